//! The PostgreSQL store (SPEC 12): several tenure replicas share one
//! database. Also meant for databases that speak PostgreSQL's protocol
//! (CockroachDB, YugabyteDB): the schema and the queries use only what they
//! offer too (see `migrations/` and docs/operations.md, "PostgreSQL").
//!
//! - Connections come from a pool (deadpool-postgres) of at most
//!   `database_pool_size`; TLS (native-tls, the OpenSSL already linked)
//!   when the URL says `sslmode=require`, with the server's certificate
//!   and host name verified against the system's trusted roots.
//! - The schema is versioned ([`migrate`]): `tenure migrate` creates or
//!   upgrades it, `serve` refuses one it does not know.
//! - Durability: every write commits before it returns; with PostgreSQL's
//!   defaults (`fsync`, `synchronous_commit = on`) a commit is on disk,
//!   which is SPEC 6's "durable before the response".
//! - Each transition is one transaction that locks its rows in one fixed
//!   order (session, then family), compares generations and writes its
//!   events and outbox rows before it commits; serialization failures and
//!   deadlocks (SQLSTATE 40001, 40P01) are retried up to
//!   [`MAX_TX_ATTEMPTS`] times with a small jittered backoff.
//!
//! Never in a message or a log: the URL's password. Errors name the
//! database as [`DatabaseUrl::redacted`] does.

mod batch;
mod coord;
mod database_url;
mod ephemeral;
pub mod keys;
pub mod migrate;
mod ops;
mod rotation;
mod views;

pub use database_url::DatabaseUrl;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use ring::rand::{SecureRandom, SystemRandom};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::clock::UnixTime;
use crate::store::StoreError;

/// How long a request waits for a pooled connection before it fails (and,
/// while the database does not answer, is answered `503`).
pub const POOL_WAIT: Duration = Duration::from_secs(2);
/// How long opening one connection may take, unless the URL says
/// `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The server-side `statement_timeout` of a serving replica's connections,
/// unless the URL sets `options` itself: a statement the database does not
/// finish within it fails (a `503`), so no request waits without bound.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole transaction (all its statements and its commit) that has not
/// ended within this time is abandoned and its connection dropped: the
/// bound when the database's host vanishes without closing the connection.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `/readyz`'s `SELECT 1` may take on a connection it got.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP keepalives on every connection: a peer gone silent is noticed in
/// about `idle + interval * retries` (5 + 2 * 3 = 11 s).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
/// What `Retry-After` suggests while the database does not answer.
pub const RETRY_AFTER_SECS: u64 = 2;
/// A transaction that meets a serialization failure or a deadlock is run
/// again, at most this many times in all.
pub const MAX_TX_ATTEMPTS: u32 = 8;

/// What can go wrong talking to the database, in words an operator can act
/// on. None of them holds the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to the database {target}: {message}")]
    Connect { target: String, message: String },
    #[error(
        "cannot connect to the database {target} over TLS: {message}. The database_url asks for TLS \
         (sslmode=require): enable ssl on the server (with a certificate the system trusts for that host name), \
         or use sslmode=disable on a network you trust"
    )]
    Tls { target: String, message: String },
    #[error("the database {target} failed: {message}")]
    Query { target: String, message: String },
    /// The connection broke, or the server is shutting down, starting or
    /// cancelled the statement (`statement_timeout`): see [`is_unreachable`].
    #[error("the database {target} does not answer: {message}")]
    Unreachable { target: String, message: String },
    #[error("the database {target} has {problem}")]
    Schema { target: String, problem: migrate::SchemaProblem },
    #[error("the database {target}: {message}")]
    Migration { target: String, message: String },
}

impl From<PgError> for StoreError {
    /// A connection that cannot be had is the database not answering
    /// (a `503`); the rest are failures (a `500`).
    fn from(e: PgError) -> Self {
        match e {
            PgError::Connect { .. } | PgError::Unreachable { .. } => StoreError::Unavailable(e.to_string()),
            e => StoreError::Io(e.to_string()),
        }
    }
}

/// A tokio-postgres error with its causes, and the server's own message,
/// detail and SQLSTATE when it has them.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            out.push_str(": ");
            out.push_str(detail);
        }
        return out;
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Whether PostgreSQL refused a value it cannot hold as text (NUL:
/// `character_not_in_repertoire`, `untranslatable_character`): bad input,
/// not a database failure.
pub fn is_unstorable_text(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER)
}

/// Whether `e` says the database cannot be reached rather than that a
/// statement is wrong: the connection closed or broke (an I/O error, no
/// server error), the server is shutting down, crashed or still starting
/// (SQLSTATE 57P01-57P03), a connection exception (class 08), or the
/// statement was cancelled by `statement_timeout` (57014). Such a failure
/// is answered `503` with `Retry-After` (SPEC 12).
pub fn is_unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::QUERY_CANCELED
        }
        None => {
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                if cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            // tokio-postgres's own connect timeout has no cause.
            e.to_string().contains("timeout")
        }
    }
}

/// The settings of every connection tenure opens (pooled, or the LISTEN
/// ones): the URL's, with [`CONNECT_TIMEOUT`] and the `application_name`
/// unless it sets them, and TCP keepalives, so a connection whose peer went
/// silent (a failover, a vanished host) is noticed and reopened.
pub(crate) fn connection_config(url: &DatabaseUrl) -> tokio_postgres::Config {
    let mut config = url.config().clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tenure");
    }
    config.keepalives(true);
    config.keepalives_idle(KEEPALIVE_IDLE);
    config.keepalives_interval(KEEPALIVE_INTERVAL);
    config.keepalives_retries(KEEPALIVE_RETRIES);
    config
}

/// A statement's failure as a [`StoreError`]: [`StoreError::Unavailable`]
/// when the database does not answer ([`is_unreachable`]), else a failure.
/// (The connection is not handed out again: it is closed by then, or the
/// server answered on it.)
pub(crate) fn classify(e: &tokio_postgres::Error) -> StoreError {
    if is_unreachable(e) {
        StoreError::Unavailable(format!("database: {}", describe(e)))
    } else {
        StoreError::Io(format!("database: {}", describe(e)))
    }
}

/// Whether a statement failed only because it met a concurrent one, so that
/// running the whole transaction again is right.
pub fn is_retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A failure inside a transaction body: the database's (perhaps worth a
/// retry) or the store's own (a corrupt record: never retried).
#[derive(Debug)]
pub enum TxError {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// The future a transaction body returns; it borrows the transaction.
pub type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 'a>>;

/// Proof that the caller's borrows (`'env`) outlive a transaction (`'a`).
pub type Env<'a, 'env> = std::marker::PhantomData<&'a &'env ()>;

/// PostgreSQL-backed store: a connection pool and the name of the database
/// it serves (for messages).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Family views kept between requests, and the shared epoch reads that
    /// say whether they still hold (`views`).
    views: std::sync::Arc<views::Views>,
    /// Guarded rotations waiting for their batch (`batch`).
    batches: std::sync::Arc<batch::Batches>,
    target: String,
    /// For the dedicated LISTEN connection (replicas, `coord`).
    url: DatabaseUrl,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("database", &self.target).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Open a pool of at most `pool_size` connections to `url` and make sure
    /// one connection works (so a wrong host, password or TLS setting fails
    /// at start, not at the first request). Does not look at the schema: see
    /// [`PgStore::require_current_schema`].
    pub async fn connect(url: &DatabaseUrl, pool_size: usize) -> Result<PgStore, PgError> {
        Self::open(url, pool_size, None).await
    }

    /// [`PgStore::connect`] for a serving replica: its connections also
    /// carry [`STATEMENT_TIMEOUT`] (unless the URL sets `options`), so
    /// every request's wait on the database is bounded. (`tenure migrate`
    /// connects without it: a migration may take longer.)
    pub async fn connect_serving(url: &DatabaseUrl, pool_size: usize) -> Result<PgStore, PgError> {
        Self::open(url, pool_size, Some(STATEMENT_TIMEOUT)).await
    }

    async fn open(
        url: &DatabaseUrl,
        pool_size: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<PgStore, PgError> {
        let target = url.redacted();
        let mut config = connection_config(url);
        if let Some(limit) = statement_timeout
            && config.get_options().is_none()
        {
            config.options(format!("-c statement_timeout={}", limit.as_millis()));
        }
        // Fast recycling (is the connection closed?) costs no round trip.
        // A connection the server closed (a restart, a failover) is closed
        // by the time it is handed out again, since its connection task
        // reads the close at once; one that broke silently fails its
        // statement, after which every idle connection is dropped
        // ([`PgStore::unreachable`]), so none of them is handed out again.
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if url.requires_tls() {
            let connector = native_tls::TlsConnector::new()
                .map_err(|e| PgError::Tls { target: target.clone(), message: e.to_string() })?;
            Manager::from_config(config, postgres_native_tls::MakeTlsConnector::new(connector), manager_config)
        } else {
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT.saturating_add(Duration::from_secs(1))))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgError::Connect { target: target.clone(), message: e.to_string() })?;
        let store = PgStore {
            pool,
            views: std::sync::Arc::default(),
            batches: std::sync::Arc::default(),
            target,
            url: url.clone(),
        };
        let client = store.pool.get().await.map_err(|e| store.pool_error(e))?;
        client.simple_query("SELECT 1").await.map_err(|e| store.query_error(&e))?;
        Ok(store)
    }

    /// A pooled connection, for work that is not a store transaction (the
    /// signing keys, `keys`).
    pub async fn pooled(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(|e| self.pool_error(e))
    }

    /// Close the pool: connections in use close when returned.
    pub fn close(self) {
        self.pool.close();
    }

    /// `user@host:port/dbname` of the database (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the database answers (`/readyz`, [`Store::check`](crate::store::Store::check)).
    pub async fn ping(&self) -> Result<(), PgError> {
        let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        match tokio::time::timeout(PING_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(answer) => answer.map(drop).map_err(|e| self.query_error(&e)),
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                self.forget_idle();
                Err(PgError::Unreachable {
                    target: self.target.clone(),
                    message: format!("no answer to SELECT 1 within {}s", PING_TIMEOUT.as_secs()),
                })
            }
        }
    }

    /// Create or upgrade the schema (`tenure migrate`). Returns the
    /// migrations applied now, oldest first; none when it was current.
    pub async fn migrate(&self, now: UnixTime) -> Result<Vec<&'static migrate::Migration>, PgError> {
        let mut client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        migrate::migrate(&mut client, now).await.map_err(|e| self.in_database(e))
    }

    /// The schema's state, as [`migrate::SchemaState`].
    pub async fn schema_state(&self) -> Result<migrate::SchemaState, PgError> {
        let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        migrate::schema_state(&**client).await.map_err(|e| self.in_database(e))
    }

    /// Fail unless the schema is exactly the one this build knows (`serve`
    /// refuses any other, naming the versions and the fix).
    pub async fn require_current_schema(&self) -> Result<i64, PgError> {
        match self.schema_state().await? {
            migrate::SchemaState::Current(version) => Ok(version),
            other => Err(PgError::Schema { target: self.target.clone(), problem: migrate::SchemaProblem(other) }),
        }
    }

    /// Run `body` in one transaction and commit, running it all again when
    /// it met a concurrent transaction (serialization failure, deadlock), at
    /// most [`MAX_TX_ATTEMPTS`] times. `body` may run more than once: it
    /// must do nothing but database work (no randomness, signing, logging).
    ///
    /// The body's second argument only carries the bound `'env: 'a`, which
    /// lets the future it returns borrow from the caller.
    pub async fn transaction<'env, T, F>(&'env self, what: &str, mut body: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> FnMut(&'a Transaction<'a>, Env<'a, 'env>) -> TxFuture<'a, T> + Send,
    {
        let mut attempt = 1;
        loop {
            let mut client = self.pool.get().await.map_err(|e| StoreError::from(self.pool_error(e)))?;
            let run = async {
                let tx = client.transaction().await?;
                let value = body(&tx, std::marker::PhantomData).await?;
                // A commit whose answer never comes (the connection broke)
                // has an unknown outcome: it is reported as the database
                // not answering (a 503), never as a success.
                tx.commit().await?;
                Ok::<T, TxError>(value)
            };
            let outcome = match tokio::time::timeout(TRANSACTION_TIMEOUT, run).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The transaction is abandoned; its connection may be
                    // stuck mid-statement: never hand it out again.
                    drop(deadpool_postgres::Object::take(client));
                    return Err(
                        self.unreachable(format!("{what} did not finish within {}s", TRANSACTION_TIMEOUT.as_secs()))
                    );
                }
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(TxError::Store(e)) => return Err(e),
                Err(TxError::Pg(e)) if is_unreachable(&e) => {
                    drop(deadpool_postgres::Object::take(client));
                    return Err(self.unreachable(format!("{what}: {}", describe(&e))));
                }
                Err(TxError::Pg(e)) if is_retryable(&e) && attempt < MAX_TX_ATTEMPTS => {
                    tracing::debug!(transaction = what, attempt, error = %describe(&e), "retrying a transaction");
                    attempt += 1;
                    tokio::time::sleep(retry_delay(attempt)).await;
                }
                Err(TxError::Pg(e)) if is_unstorable_text(&e) => return Err(StoreError::Refused(describe(&e))),
                Err(TxError::Pg(e)) => {
                    return Err(StoreError::Io(format!(
                        "{what} in the database {} failed: {}",
                        self.target,
                        describe(&e)
                    )));
                }
            }
        }
    }

    fn pool_error(&self, e: PoolError) -> PgError {
        let target = self.target.clone();
        match e {
            PoolError::Backend(e) => {
                let message = describe(&e);
                // tokio-postgres words every TLS failure this way.
                if message.starts_with("error performing TLS handshake") {
                    PgError::Tls { target, message }
                } else {
                    PgError::Connect { target, message }
                }
            }
            PoolError::Timeout(_) => PgError::Connect {
                target,
                message: format!(
                    "no connection within {}s (every pooled connection is busy, or the server does not answer)",
                    POOL_WAIT.as_secs()
                ),
            },
            PoolError::Closed => PgError::Query { target, message: "the pool is closed (shutting down)".to_owned() },
            other => PgError::Connect { target, message: other.to_string() },
        }
    }

    fn query_error(&self, e: &tokio_postgres::Error) -> PgError {
        if is_unreachable(e) {
            self.forget_idle();
            return PgError::Unreachable { target: self.target.clone(), message: describe(e) };
        }
        PgError::Query { target: self.target.clone(), message: describe(e) }
    }

    /// A statement failed because the database does not answer: drop the
    /// idle connections too (they lead to the same server, and may be
    /// broken without knowing it) and say so as [`StoreError::Unavailable`].
    pub(crate) fn unreachable(&self, message: String) -> StoreError {
        self.forget_idle();
        StoreError::Unavailable(format!("the database {} does not answer: {message}", self.target))
    }

    /// A statement's failure on a pooled connection as a [`StoreError`]:
    /// the database not answering ([`PgStore::unreachable`]: the idle
    /// connections are dropped too), a value it cannot hold, or a failure.
    pub(crate) fn failed(&self, e: tokio_postgres::Error) -> StoreError {
        if is_unreachable(&e) {
            return self.unreachable(describe(&e));
        }
        if is_unstorable_text(&e) {
            return StoreError::Refused(describe(&e));
        }
        classify(&e)
    }

    /// [`PgStore::failed`] for a statement that failed on `client`, which
    /// is never handed out again when the database did not answer on it
    /// (its close may not have been read yet when the next request asks).
    pub(crate) fn failed_on(&self, client: deadpool_postgres::Object, e: tokio_postgres::Error) -> StoreError {
        if is_unreachable(&e) {
            drop(deadpool_postgres::Object::take(client));
        }
        self.failed(e)
    }

    /// A statement on `client` that did not finish within
    /// [`TRANSACTION_TIMEOUT`]: the connection may be stuck mid-statement,
    /// so it leaves the pool.
    pub(crate) fn timed_out(&self, client: deadpool_postgres::Object, sql: &str) -> StoreError {
        drop(deadpool_postgres::Object::take(client));
        let what = sql.split_whitespace().next().unwrap_or("a statement");
        self.unreachable(format!("{what} did not finish within {}s", TRANSACTION_TIMEOUT.as_secs()))
    }

    /// Drop every idle pooled connection; new ones are opened on demand.
    fn forget_idle(&self) {
        let _ = self.pool.retain(|_, _| false);
    }

    fn in_database(&self, e: migrate::MigrateError) -> PgError {
        match e {
            migrate::MigrateError::Pg(e) => self.query_error(&e),
            migrate::MigrateError::Schema(problem) => PgError::Schema { target: self.target.clone(), problem },
            migrate::MigrateError::Raced(message) => PgError::Migration { target: self.target.clone(), message },
        }
    }
}

/// The pause before attempt `attempt` (2, 3, ...): random, up to 5 ms
/// doubled per attempt, at most 320 ms, so retries of colliding
/// transactions spread out.
fn retry_delay(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.saturating_sub(2).min(6);
    let mut byte = [0u8; 2];
    let jitter = match SystemRandom::new().fill(&mut byte) {
        Ok(()) => u64::from(u16::from_le_bytes(byte)) % ceiling_ms.max(1),
        Err(_) => ceiling_ms / 2,
    };
    Duration::from_millis(jitter + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_small() {
        for attempt in 2..=MAX_TX_ATTEMPTS {
            let ceiling = Duration::from_millis((5u64 << (attempt - 2).min(6)) + 1);
            for _ in 0..50 {
                let d = retry_delay(attempt);
                assert!(d >= Duration::from_millis(1) && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        assert!(retry_delay(100) <= Duration::from_millis(321));
    }
}
