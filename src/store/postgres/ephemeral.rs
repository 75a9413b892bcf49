//! Nothing per process (SPEC 12) on PostgreSQL: console sessions, pending
//! sign-ins and the DPoP proofs seen, each a row that expires on its own.
//! Tables: `migrations/0007_nothing_per_process.sql`.
//!
//! The compare-and-swap of a console session is `UPDATE ... WHERE version`
//! with its row count; a take is `DELETE ... RETURNING`; remembering a
//! proof is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` (only over an
//! expired row) with its row count. All three are what CockroachDB and
//! YugabyteDB accept too.

use tokio_postgres::Row;

use super::ops::secs;
use super::{PgStore, describe};
use crate::clock::UnixTime;
use crate::store::{ConsoleSessionRecord, PendingSignInRecord, Result, StoreError};

/// At most this many expired rows are deleted per statement.
const SWEEP_BATCH: i64 = 512;

fn pg(e: tokio_postgres::Error) -> StoreError {
    if super::is_unstorable_text(&e) {
        return StoreError::Refused(describe(&e));
    }
    StoreError::Io(format!("database: {}", describe(&e)))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn time(row: &Row, i: usize) -> Result<UnixTime> {
    let v: i64 = row.try_get(i).map_err(pg)?;
    Ok(UnixTime(u64::try_from(v).unwrap_or(0)))
}

fn console_record(row: &Row) -> Result<ConsoleSessionRecord> {
    Ok(ConsoleSessionRecord {
        pending: row.try_get(0).map_err(pg)?,
        created: time(row, 1)?,
        expires_at: time(row, 2)?,
        sealed: row.try_get(3).map_err(pg)?,
    })
}

fn pending_record(row: &Row) -> Result<PendingSignInRecord> {
    let body: serde_json::Value = row.try_get(0).map_err(pg)?;
    serde_json::from_value(body)
        .map_err(|e| StoreError::Corrupt { what: "pending sign-in".into(), message: e.to_string() })
}

impl PgStore {
    async fn pooled_client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))
    }

    pub(crate) async fn pg_put_console_session(
        &self,
        key: &[u8; 32],
        record: &ConsoleSessionRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<()> {
        let client = self.pooled_client().await?;
        let count: i64 = client
            .query_one("SELECT count(*) FROM console_sessions", &[])
            .await
            .map_err(|e| self.failed(e))?
            .try_get(0)
            .map_err(pg)?;
        if count >= limit(max) {
            // Room: the expired first, then the oldest pending, then the
            // oldest. Replicas making room at once may each delete a few:
            // the table stays within the bound give or take the racers.
            let expired = client
                .execute("DELETE FROM console_sessions WHERE expires_at <= $1", &[&secs(now)])
                .await
                .map_err(|e| self.failed(e))?;
            let excess = count.saturating_sub(i64::try_from(expired).unwrap_or(i64::MAX)) - limit(max) + 1;
            if excess > 0 {
                client
                    .execute(
                        "DELETE FROM console_sessions WHERE key IN (SELECT key FROM console_sessions \
                         ORDER BY pending DESC, created ASC LIMIT $1)",
                        &[&excess],
                    )
                    .await
                    .map_err(|e| self.failed(e))?;
            }
        }
        let statement = client
            .prepare_cached(
                "INSERT INTO console_sessions (key, version, pending, created, expires_at, sealed) \
                 VALUES ($1, 0, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET version = 0, \
                 pending = excluded.pending, created = excluded.created, expires_at = excluded.expires_at, \
                 sealed = excluded.sealed",
            )
            .await
            .map_err(|e| self.failed(e))?;
        client
            .execute(
                &statement,
                &[&key.as_slice(), &record.pending, &secs(record.created), &secs(record.expires_at), &record.sealed],
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    pub(crate) async fn pg_console_session(
        &self,
        key: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<(u64, ConsoleSessionRecord)>> {
        let client = self.pooled_client().await?;
        let statement = client
            .prepare_cached(
                "SELECT pending, created, expires_at, sealed, version FROM console_sessions \
                 WHERE key = $1 AND expires_at > $2",
            )
            .await
            .map_err(|e| self.failed(e))?;
        let row = client.query_opt(&statement, &[&key.as_slice(), &secs(now)]).await.map_err(|e| self.failed(e))?;
        row.map(|r| {
            let version: i64 = r.try_get(4).map_err(pg)?;
            Ok((u64::try_from(version).unwrap_or(0), console_record(&r)?))
        })
        .transpose()
    }

    pub(crate) async fn pg_replace_console_session(
        &self,
        key: &[u8; 32],
        version: u64,
        record: &ConsoleSessionRecord,
    ) -> Result<bool> {
        let client = self.pooled_client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE console_sessions SET version = version + 1, pending = $3, created = $4, \
                 expires_at = $5, sealed = $6 WHERE key = $1 AND version = $2",
            )
            .await
            .map_err(|e| self.failed(e))?;
        let n = client
            .execute(
                &statement,
                &[
                    &key.as_slice(),
                    &limit(usize::try_from(version).unwrap_or(usize::MAX)),
                    &record.pending,
                    &secs(record.created),
                    &secs(record.expires_at),
                    &record.sealed,
                ],
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n == 1)
    }

    pub(crate) async fn pg_remove_console_session(
        &self,
        key: &[u8; 32],
        version: Option<u64>,
    ) -> Result<Option<ConsoleSessionRecord>> {
        let client = self.pooled_client().await?;
        let version = version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let row = client
            .query_opt(
                "DELETE FROM console_sessions WHERE key = $1 AND ($2::BIGINT IS NULL OR version = $2) \
                 RETURNING pending, created, expires_at, sealed",
                &[&key.as_slice(), &version],
            )
            .await
            .map_err(|e| self.failed(e))?;
        row.map(|r| console_record(&r)).transpose()
    }

    pub(crate) async fn pg_put_pending_sign_in(
        &self,
        key: &[u8; 32],
        record: &PendingSignInRecord,
        max: usize,
        now: UnixTime,
    ) -> Result<bool> {
        let client = self.pooled_client().await?;
        let live: i64 = client
            .query_one("SELECT count(*) FROM pending_sign_ins WHERE expires_at > $1", &[&secs(now)])
            .await
            .map_err(|e| self.failed(e))?
            .try_get(0)
            .map_err(pg)?;
        if live >= limit(max) {
            return Ok(false);
        }
        let body = serde_json::to_value(record).map_err(|e| StoreError::Io(format!("cannot encode a record: {e}")))?;
        client
            .execute(
                "INSERT INTO pending_sign_ins (key, browser, expires_at, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO NOTHING",
                &[&key.as_slice(), &record.browser.as_slice(), &secs(record.expires_at), &body],
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(true)
    }

    pub(crate) async fn pg_take_pending_sign_in(
        &self,
        key: &[u8; 32],
        browser: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<PendingSignInRecord>> {
        let client = self.pooled_client().await?;
        let row = client
            .query_opt(
                "DELETE FROM pending_sign_ins WHERE key = $1 AND browser = $2 RETURNING body, expires_at",
                &[&key.as_slice(), &browser.as_slice()],
            )
            .await
            .map_err(|e| self.failed(e))?;
        match row {
            Some(r) if time(&r, 1)? > now => pending_record(&r).map(Some),
            _ => Ok(None),
        }
    }

    pub(crate) async fn pg_remember_proof(&self, key: &[u8; 16], until: UnixTime, now: UnixTime) -> Result<bool> {
        let client = self.pooled_client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO dpop_proofs (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE \
                 SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at < $3",
            )
            .await
            .map_err(|e| self.failed(e))?;
        let n = client
            .execute(&statement, &[&key.as_slice(), &secs(until), &secs(now)])
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n == 1)
    }

    /// Expired console sessions, pending sign-ins and proofs (the sweeper).
    pub(crate) async fn sweep_ephemeral(&self, now: UnixTime) -> Result<usize> {
        let client = self.pooled_client().await?;
        let mut removed = 0usize;
        for table in ["console_sessions", "pending_sign_ins", "dpop_proofs"] {
            let sql = format!(
                "DELETE FROM {table} WHERE key IN \
                 (SELECT key FROM {table} WHERE expires_at <= $1 LIMIT {SWEEP_BATCH})"
            );
            loop {
                let n = client.execute(&sql, &[&secs(now)]).await.map_err(|e| self.failed(e))?;
                removed += usize::try_from(n).unwrap_or(usize::MAX);
                if n < u64::try_from(SWEEP_BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
        }
        Ok(removed)
    }
}
