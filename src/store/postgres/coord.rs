//! Coordination of replicas on PostgreSQL (issue #9): leases, claimed
//! outbox deliveries, shared throttles, the cache epoch and its
//! notification. Tables: `migrations/0003_replicas.sql`.
//!
//! Only what CockroachDB and YugabyteDB have too, except LISTEN/NOTIFY,
//! which is an accelerator: a database without it is followed by the
//! periodic epoch check alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_postgres::error::SqlState;

use super::ops::secs;
use super::{PgStore, TxError, describe};
use crate::clock::UnixTime;
use crate::logout::Delivery;
use crate::oauth::throttle::{ThrottleKey, ThrottleRules, ThrottleState};
use crate::store::{Result, StoreError};

/// The NOTIFY channel of cache changes.
pub const CHANNEL: &str = "tenure_cache";
/// The `cache_epochs` row of the policy and the run-time clients.
const CONFIG_EPOCH: &str = "config";
/// How long the listener waits before connecting again after a failure.
const LISTEN_RETRY: Duration = Duration::from_secs(5);

fn pg(e: tokio_postgres::Error) -> StoreError {
    super::classify(&e)
}

const SETUP_TOKEN_PREFIX: &str = "setup-token:";

fn setup_token_name(hash: &[u8; 32]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{SETUP_TOKEN_PREFIX}{hex}")
}

fn hash_of_hex(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn small(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Bump the cache epoch inside a change's transaction (`set_policy`,
/// `write_client`): every replica reloads once it sees the new epoch.
pub(crate) async fn tx_bump_epoch(tx: &tokio_postgres::Transaction<'_>) -> std::result::Result<(), TxError> {
    tx.execute(
        "INSERT INTO cache_epochs (name, epoch) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET epoch = cache_epochs.epoch + 1",
        &[&CONFIG_EPOCH],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Tell the replicas listening that the epoch moved (after the commit,
    /// so they read the new state). A database without NOTIFY refuses it:
    /// the periodic check catches up.
    pub(crate) async fn notify_change(&self) {
        let Ok(client) = self.pool.get().await else { return };
        // Bounded: the change is committed already, and its response must
        // not wait on a database that stopped answering.
        match tokio::time::timeout(super::PING_TIMEOUT, client.batch_execute(&format!("NOTIFY {CHANNEL}"))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %describe(&e), "NOTIFY failed; replicas notice the change within a second");
            }
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                tracing::debug!("NOTIFY did not finish in time; replicas notice the change within a second");
            }
        }
    }

    pub(crate) async fn pg_take_lease(&self, name: &str, owner: &str, now: UnixTime, until: UnixTime) -> Result<bool> {
        // One statement: insert, or take over when ours or run out.
        let n = self
            .execute(
                "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $4) \
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
                 WHERE leases.owner = $2 OR leases.until <= $3",
                &[&name, &owner, &secs(now), &secs(until)],
            )
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn pg_claim_deliveries(
        &self,
        owner: &str,
        now: UnixTime,
        lease_until: UnixTime,
        limit: usize,
    ) -> Result<Vec<(u64, Delivery)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Rows another replica is claiming right now are skipped, not
        // waited for; a claim of ours is renewed (still under way here, or
        // waiting for a free slot); a claim that ran out is taken over.
        let rows = self
            .query(
                "UPDATE logout_outbox SET lease_owner = $1, lease_until = $3 WHERE id IN ( \
                   SELECT id FROM logout_outbox \
                   WHERE next_attempt_at <= $2 \
                     AND (lease_until IS NULL OR lease_until <= $2 OR lease_owner = $1) \
                   ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, next_attempt_at, body",
                &[&owner, &secs(now), &secs(lease_until), &limit],
            )
            .await?;
        let mut claimed = rows
            .into_iter()
            .map(|r| {
                let id = unsigned(r.try_get(0).map_err(pg)?);
                let at: i64 = r.try_get(1).map_err(pg)?;
                let body = r.try_get(2).map_err(pg)?;
                let delivery: Delivery = serde_json::from_value(body).map_err(|e| StoreError::Corrupt {
                    what: format!("logout delivery {id}"),
                    message: e.to_string(),
                })?;
                Ok((at, id, delivery))
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(at, id, _)| (*at, *id));
        Ok(claimed.into_iter().map(|(_, id, d)| (id, d)).collect())
    }

    pub(crate) async fn pg_shared_throttle(&self, key: &ThrottleKey) -> Result<Option<ThrottleState>> {
        let row = self
            .query_opt(
                "SELECT failures, window_start, strikes, locked_until FROM throttles WHERE key = $1",
                &[&key.as_bytes().as_slice()],
            )
            .await?;
        row.map(|r| state_from_row(&r)).transpose()
    }

    pub(crate) async fn pg_throttle_failed(
        &self,
        key: &ThrottleKey,
        rules: &ThrottleRules,
        now: UnixTime,
    ) -> Result<Option<ThrottleState>> {
        let key = key.as_bytes().to_vec();
        let (key, rules) = (&key, *rules);
        self.transaction("counting a failed authentication", |tx, _| {
            Box::pin(async move {
                // The row first (a concurrent first failure meets it), then
                // locked while the count is updated.
                tx.execute(
                    "INSERT INTO throttles (key, failures, window_start, strikes, locked_until, expires_at) \
                     VALUES ($1, 0, $2, 0, 0, $2) ON CONFLICT (key) DO NOTHING",
                    &[key, &secs(now)],
                )
                .await?;
                let row = tx
                    .query_one(
                        "SELECT failures, window_start, strikes, locked_until FROM throttles WHERE key = $1 FOR UPDATE",
                        &[key],
                    )
                    .await?;
                let next = state_from_row(&row)?.after_failure(&rules, now);
                tx.execute(
                    "UPDATE throttles SET failures = $2, window_start = $3, strikes = $4, locked_until = $5, \
                     expires_at = $6 WHERE key = $1",
                    &[
                        key,
                        &i64::from(next.failures),
                        &secs(next.window_start),
                        &i64::from(next.strikes),
                        &secs(next.locked_until),
                        &secs(next.keep_until(&rules)),
                    ],
                )
                .await?;
                Ok(Some(next))
            })
        })
        .await
    }

    pub(crate) async fn pg_clear_throttle(&self, key: &ThrottleKey) -> Result<()> {
        self.execute("DELETE FROM throttles WHERE key = $1", &[&key.as_bytes().as_slice()]).await?;
        Ok(())
    }

    /// Throttle records whose window and lock are over (the sweeper).
    pub(crate) async fn sweep_throttles(&self, now: UnixTime) -> Result<usize> {
        let n = self.execute("DELETE FROM throttles WHERE expires_at <= $1", &[&secs(now)]).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    // First-run setup tokens (SPEC 9) are rows of `leases` named
    // `setup-token:<hex SHA-256>` whose `until` is the token's expiry: no
    // schema change, and no job lease has such a name.

    pub(crate) async fn pg_put_setup_token(&self, hash: &[u8; 32], until: UnixTime) -> Result<bool> {
        self.execute(
            "INSERT INTO leases (name, owner, until) VALUES ($1, 'setup', $2) \
                 ON CONFLICT (name) DO UPDATE SET until = excluded.until",
            &[&setup_token_name(hash), &secs(until)],
        )
        .await?;
        Ok(true)
    }

    pub(crate) async fn pg_setup_token(&self, hash: &[u8; 32], now: UnixTime) -> Result<bool> {
        let row = self
            .query_opt("SELECT 1 FROM leases WHERE name = $1 AND until > $2", &[&setup_token_name(hash), &secs(now)])
            .await?;
        Ok(row.is_some())
    }

    /// One statement: the rows go to the first taker only.
    pub(crate) async fn pg_take_setup_tokens(&self, now: UnixTime) -> Result<Vec<crate::store::SetupToken>> {
        let rows = self.query("DELETE FROM leases WHERE name LIKE 'setup-token:%' RETURNING name, until", &[]).await?;
        let mut live = Vec::new();
        for row in rows {
            let name: String = row.try_get(0).map_err(pg)?;
            let until = UnixTime(unsigned(row.try_get(1).map_err(pg)?));
            let hash = name.strip_prefix(SETUP_TOKEN_PREFIX).and_then(hash_of_hex);
            if let Some(hash) = hash.filter(|_| until > now) {
                live.push((hash, until));
            }
        }
        Ok(live)
    }

    pub(crate) async fn pg_cache_epoch(&self) -> Result<u64> {
        let row = self.query_opt("SELECT epoch FROM cache_epochs WHERE name = $1", &[&CONFIG_EPOCH]).await?;
        match row {
            Some(r) => Ok(unsigned(r.try_get(0).map_err(pg)?)),
            None => Ok(0),
        }
    }

    /// Listen for cache changes on a connection of its own and wake
    /// `changed` on each (and after every reconnection, since notifications
    /// sent meanwhile are lost). Runs until aborted; on a database without
    /// LISTEN it logs that once and ends (the periodic check suffices).
    pub async fn listen_for_changes(self, changed: Arc<Notify>) {
        loop {
            match self.listen_once(&changed).await {
                Ok(()) => tracing::warn!(database = %self.target, "the LISTEN connection closed; reconnecting"),
                Err(ListenError::Unsupported(message)) => {
                    tracing::info!(
                        database = %self.target,
                        %message,
                        "the database has no LISTEN/NOTIFY; replicas notice changes by the periodic epoch check"
                    );
                    return;
                }
                Err(ListenError::Failed(message)) => {
                    tracing::warn!(database = %self.target, %message, "the LISTEN connection failed; retrying");
                }
            }
            changed.notify_one();
            tokio::time::sleep(LISTEN_RETRY).await;
        }
    }

    async fn listen_once(&self, changed: &Notify) -> std::result::Result<(), ListenError> {
        let config = super::connection_config(&self.url);
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let failed = |e: tokio_postgres::Error| ListenError::Failed(describe(&e));
        let (client, pump) = if self.url.requires_tls() {
            let connector = native_tls::TlsConnector::new().map_err(|e| ListenError::Failed(e.to_string()))?;
            let (client, connection) =
                config.connect(postgres_native_tls::MakeTlsConnector::new(connector)).await.map_err(failed)?;
            (client, tokio::spawn(pump(connection, tx)))
        } else {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(failed)?;
            (client, tokio::spawn(pump(connection, tx)))
        };
        let listened = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
        if let Err(e) = listened {
            pump.abort();
            let unsupported =
                e.code().is_some_and(|c| *c == SqlState::FEATURE_NOT_SUPPORTED || *c == SqlState::SYNTAX_ERROR);
            return Err(if unsupported { ListenError::Unsupported(describe(&e)) } else { failed(e) });
        }
        // Changes made before LISTEN took effect were not notified.
        changed.notify_one();
        while rx.recv().await.is_some() {
            changed.notify_one();
        }
        drop(client);
        match pump.await {
            Ok(Err(e)) => Err(failed(e)),
            _ => Ok(()),
        }
    }
}

enum ListenError {
    Unsupported(String),
    Failed(String),
}

/// Drive the LISTEN connection, forwarding each notification.
async fn pump<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    tx: mpsc::UnboundedSender<()>,
) -> std::result::Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => {
                if tx.send(()).is_err() {
                    return Ok(());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
}

fn state_from_row(r: &tokio_postgres::Row) -> std::result::Result<ThrottleState, StoreError> {
    Ok(ThrottleState {
        failures: small(r.try_get(0).map_err(pg)?),
        window_start: UnixTime(unsigned(r.try_get(1).map_err(pg)?)),
        strikes: small(r.try_get(2).map_err(pg)?),
        locked_until: UnixTime(unsigned(r.try_get(3).map_err(pg)?)),
    })
}
