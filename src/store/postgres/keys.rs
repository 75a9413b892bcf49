//! Signing keys in PostgreSQL (issue #9): every replica signs with and
//! publishes the same keys (docs/operations.md, "Signing keys with
//! PostgreSQL").
//!
//! - Table `signing_keys` (migrations/0002_signing_keys.sql): one row per
//!   manifest entry, in manifest order, the private key sealed with
//!   AES-256-GCM under a key derived from `keys/master.key`
//!   ([`crate::token::master_key::SealingKey`], kid as associated data).
//!   The master key never enters the database; a replica with another one
//!   refuses to start ([`KeyError::WrongMasterKey`]).
//! - Changes (first-start creation, rotation, revocation, pruning) run the
//!   same code as the key directory ([`crate::token::keys::Vault`]) over a
//!   [`Snapshot`] of the table read in one transaction, written back in the
//!   same transaction with the epoch row bumped (`epochs.signing_keys`,
//!   compared with the epoch read first: a lost update fails instead). They
//!   run under the lease `keys` (a row taken with a conditional update), so
//!   two replicas starting together create one key, not two.
//! - Every replica compares the epoch every couple of seconds and reloads
//!   when it moved; a `NOTIFY tenure_keys` after each change makes that
//!   immediate where the database has LISTEN/NOTIFY ([`DbKeys::listen`]).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use super::DatabaseUrl;
use super::PgStore;
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::duration::Secs;
use crate::token::SigningAlg;
use crate::token::keys::{self, KeyError, KeyRecord, KeySet, Manifest, Revocation, Rotation, Vault};
use crate::token::master_key::{Sealed, SealingKey};

/// The notification channel of key changes.
pub const CHANNEL: &str = "tenure_keys";
/// The lease row of key changes.
const LEASE: &str = "keys";
/// How long a lease is held at most (a replica that dies holding it blocks
/// key changes this long).
const LEASE_FOR: Secs = Secs::new(30);
/// How long a change waits for the lease before it fails.
const LEASE_WAIT: Duration = Duration::from_secs(40);
/// How long a lost LISTEN connection waits before it reconnects.
const RELISTEN_AFTER: Duration = Duration::from_secs(5);

/// The signing keys of one database.
pub struct DbKeys {
    store: PgStore,
    url: DatabaseUrl,
    sealing: Arc<SealingKey>,
    /// This process, as a lease owner.
    owner: String,
}

impl std::fmt::Debug for DbKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbKeys").field("database", &self.store.target()).finish_non_exhaustive()
    }
}

/// A read of `signing_keys`, private keys opened: the [`Vault`] the key
/// operations run over. Records what they change, for the write-back.
pub struct Snapshot {
    target: String,
    manifest: RefCell<Manifest>,
    privates: RefCell<HashMap<String, Vec<u8>>>,
    added: RefCell<HashSet<String>>,
    removed: RefCell<HashSet<String>>,
    written: RefCell<bool>,
}

impl Snapshot {
    fn place(&self) -> PathBuf {
        PathBuf::from(format!("{} (table signing_keys)", self.target))
    }
}

impl Vault for Snapshot {
    fn manifest_place(&self) -> PathBuf {
        self.place()
    }
    fn key_place(&self, _kid: &str) -> PathBuf {
        self.place()
    }
    fn read_manifest(&self) -> Result<Manifest, KeyError> {
        Ok(self.manifest.borrow().clone())
    }
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyError> {
        *self.manifest.borrow_mut() = manifest.clone();
        *self.written.borrow_mut() = true;
        Ok(())
    }
    fn put_private(&self, kid: &str, der: &[u8]) -> Result<(), KeyError> {
        self.privates.borrow_mut().insert(kid.to_owned(), der.to_vec());
        self.added.borrow_mut().insert(kid.to_owned());
        self.removed.borrow_mut().remove(kid);
        Ok(())
    }
    fn has_private(&self, kid: &str) -> bool {
        self.privates.borrow().contains_key(kid)
    }
    fn private(&self, kid: &str) -> Result<Vec<u8>, String> {
        self.privates.borrow().get(kid).cloned().ok_or_else(|| "its private key is not in the database".to_owned())
    }
    fn remove_private(&self, kid: &str) -> Result<(), KeyError> {
        if self.privates.borrow_mut().remove(kid).is_some() {
            self.removed.borrow_mut().insert(kid.to_owned());
        }
        self.added.borrow_mut().remove(kid);
        Ok(())
    }
}

/// Whether the database holds a private signing key sealed under some
/// master key (before a replica may write a master key of its own).
pub async fn holds_sealed_keys(store: &PgStore) -> Result<bool, KeyError> {
    let error = |message: String| KeyError::Database { target: store.target().to_owned(), message };
    let client = store.pooled().await.map_err(|e| error(e.to_string()))?;
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE sealed IS NOT NULL)", &[])
        .await
        .map_err(|e| error(super::describe(&e)))?;
    Ok(row.get(0))
}

impl DbKeys {
    pub fn new(store: PgStore, url: DatabaseUrl, sealing: SealingKey) -> DbKeys {
        DbKeys { store, url, sealing: Arc::new(sealing), owner: uuid::Uuid::new_v4().to_string() }
    }

    pub fn target(&self) -> &str {
        self.store.target()
    }

    fn db_error(&self, message: impl std::fmt::Display) -> KeyError {
        KeyError::Database { target: self.store.target().to_owned(), message: message.to_string() }
    }

    fn pg_error(&self, e: &tokio_postgres::Error) -> KeyError {
        if super::is_unreachable(e) {
            return KeyError::DatabaseUnavailable {
                target: self.store.target().to_owned(),
                message: super::describe(e),
            };
        }
        self.db_error(super::describe(e))
    }

    /// No pooled connection: the database does not answer, or (TLS) it is
    /// set up wrong.
    fn pool_error(&self, e: super::PgError) -> KeyError {
        match e {
            super::PgError::Connect { .. } | super::PgError::Unreachable { .. } => {
                KeyError::DatabaseUnavailable { target: self.store.target().to_owned(), message: e.to_string() }
            }
            e => self.db_error(e),
        }
    }

    /// The key-set epoch: it moves with every change of the keys.
    pub async fn epoch(&self) -> Result<i64, KeyError> {
        let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
        let row = client
            .query_one("SELECT epoch FROM epochs WHERE name = 'signing_keys'", &[])
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(row.get(0))
    }

    /// The records, in manifest order (`tenure admin keys list`).
    pub async fn records(&self) -> Result<Manifest, KeyError> {
        let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
        let (_, snapshot) = self.read(&client, false).await?;
        Ok(snapshot.manifest.into_inner())
    }

    /// Every unrevoked key, opened.
    pub async fn load(&self) -> Result<KeySet, KeyError> {
        let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
        let (_, snapshot) = self.read(&client, true).await?;
        tokio::task::spawn_blocking(move || keys::load(&snapshot)).await.map_err(|e| KeyError::Task(e.to_string()))?
    }

    /// See [`keys::ensure_active`].
    pub async fn ensure_active(
        &self,
        alg: SigningAlg,
        now: UnixTime,
        publish_ahead: Secs,
    ) -> Result<Vec<KeyRecord>, KeyError> {
        self.change("creating the signing keys", move |v| keys::ensure_active(v, alg, now, publish_ahead)).await
    }

    /// See [`keys::rotate`].
    pub async fn rotate(&self, alg: SigningAlg, now: UnixTime, publish_ahead: Secs) -> Result<Rotation, KeyError> {
        self.change("rotating the signing keys", move |v| keys::rotate(v, alg, now, publish_ahead)).await
    }

    /// See [`keys::revoke`].
    pub async fn revoke(&self, kid: &str, now: UnixTime) -> Result<Revocation, KeyError> {
        let kid = kid.to_owned();
        self.change("revoking a signing key", move |v| keys::revoke(v, &kid, now)).await
    }

    /// See [`keys::prune`].
    pub async fn prune(&self, now: UnixTime, retain: Secs) -> Result<Vec<String>, KeyError> {
        self.change("pruning the signing keys", move |v| keys::prune(v, now, retain)).await
    }

    /// Read the epoch and the table; open the private keys when `open`.
    async fn read(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        open: bool,
    ) -> Result<(i64, Snapshot), KeyError> {
        let epoch: i64 = client
            .query_one("SELECT epoch FROM epochs WHERE name = 'signing_keys'", &[])
            .await
            .map_err(|e| self.pg_error(&e))?
            .get(0);
        let rows = client
            .query("SELECT kid, record, sealed, nonce FROM signing_keys ORDER BY position", &[])
            .await
            .map_err(|e| self.pg_error(&e))?;
        let mut manifest = Manifest::default();
        let mut privates = HashMap::new();
        for row in rows {
            let kid: String = row.get(0);
            let record: serde_json::Value = row.get(1);
            let record: KeyRecord = serde_json::from_value(record)
                .map_err(|e| self.db_error(format!("the record of key {kid} is not valid: {e}")))?;
            let sealed: Option<Vec<u8>> = row.get(2);
            let nonce: Option<Vec<u8>> = row.get(3);
            if open && let (Some(ciphertext), Some(nonce)) = (sealed, nonce) {
                let nonce = <[u8; 12]>::try_from(nonce.as_slice())
                    .map_err(|_| self.db_error(format!("the nonce of key {kid} is not 12 bytes")))?;
                let der = self.sealing.open(&kid, &Sealed { nonce, ciphertext }).ok_or_else(|| {
                    KeyError::WrongMasterKey { kid: kid.clone(), target: self.store.target().to_owned() }
                })?;
                privates.insert(kid.clone(), der);
            }
            manifest.keys.push(record);
        }
        Ok((
            epoch,
            Snapshot {
                target: self.store.target().to_owned(),
                manifest: RefCell::new(manifest),
                privates: RefCell::new(privates),
                added: RefCell::default(),
                removed: RefCell::default(),
                written: RefCell::new(false),
            },
        ))
    }

    /// Run `op` over a snapshot under the lease, in one transaction; write
    /// back what it changed and bump the epoch; notify the replicas.
    async fn change<T, F>(&self, what: &str, op: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot) -> Result<T, KeyError> + Send + 'static,
    {
        self.acquire(what).await?;
        let outcome = self.change_locked(op).await;
        self.release().await;
        let (out, changed) = outcome?;
        if changed {
            self.notify().await;
        }
        Ok(out)
    }

    async fn change_locked<T, F>(&self, op: F) -> Result<(T, bool), KeyError>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshot) -> Result<T, KeyError> + Send + 'static,
    {
        let mut client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
        let tx = client.transaction().await.map_err(|e| self.pg_error(&e))?;
        let (epoch, snapshot) = self.read(&tx, true).await?;
        // Key generation (RSA) takes a while: off the async threads.
        let (snapshot, out) = tokio::task::spawn_blocking(move || {
            let out = op(&snapshot);
            (snapshot, out)
        })
        .await
        .map_err(|e| KeyError::Task(e.to_string()))?;
        let out = out?;
        if !*snapshot.written.borrow() {
            tx.rollback().await.map_err(|e| self.pg_error(&e))?;
            return Ok((out, false));
        }
        let manifest = snapshot.manifest.borrow().clone();
        let kids: Vec<String> = manifest.keys.iter().map(|k| k.kid.clone()).collect();
        tx.execute("DELETE FROM signing_keys WHERE NOT (kid = ANY($1))", &[&kids])
            .await
            .map_err(|e| self.pg_error(&e))?;
        let added = snapshot.added.borrow().clone();
        let privates = snapshot.privates.borrow().clone();
        for (position, record) in manifest.keys.iter().enumerate() {
            let body = serde_json::to_value(record).map_err(|e| self.db_error(e))?;
            let sealed = match privates.get(&record.kid).filter(|_| added.contains(&record.kid)) {
                Some(der) => Some(self.sealing.seal(&record.kid, der)?),
                None => None,
            };
            let (ciphertext, nonce) = match sealed {
                Some(s) => (Some(s.ciphertext), Some(s.nonce.to_vec())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO signing_keys (kid, position, record, sealed, nonce) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (kid) DO UPDATE SET position = EXCLUDED.position, record = EXCLUDED.record",
                &[&record.kid, &(position as i64), &body, &ciphertext, &nonce],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        }
        let removed: Vec<String> = snapshot.removed.borrow().iter().cloned().collect();
        for kid in &removed {
            tx.execute("UPDATE signing_keys SET sealed = NULL, nonce = NULL WHERE kid = $1", &[kid])
                .await
                .map_err(|e| self.pg_error(&e))?;
        }
        let bumped = tx
            .execute("UPDATE epochs SET epoch = epoch + 1 WHERE name = 'signing_keys' AND epoch = $1", &[&epoch])
            .await
            .map_err(|e| self.pg_error(&e))?;
        if bumped != 1 {
            return Err(self.db_error(
                "the keys changed at the same time from a process without the lease (another tenure version?); \
                 nothing was written: try again",
            ));
        }
        tx.commit().await.map_err(|e| self.pg_error(&e))?;
        Ok((out, true))
    }

    /// Take the lease `keys`, waiting up to [`LEASE_WAIT`] for another
    /// replica to finish.
    async fn acquire(&self, what: &str) -> Result<(), KeyError> {
        let started = std::time::Instant::now();
        loop {
            let now = SystemClock.now();
            let until = now.plus(LEASE_FOR);
            let (now_s, until_s) = (secs(now), secs(until));
            let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
            let inserted = client
                .execute(
                    "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                    &[&LEASE, &self.owner, &until_s],
                )
                .await
                .map_err(|e| self.pg_error(&e))?;
            if inserted == 1 {
                return Ok(());
            }
            let taken = client
                .execute(
                    "UPDATE leases SET owner = $1, until = $2 WHERE name = $3 AND (owner = $1 OR until < $4)",
                    &[&self.owner, &until_s, &LEASE, &now_s],
                )
                .await
                .map_err(|e| self.pg_error(&e))?;
            if taken == 1 {
                return Ok(());
            }
            if started.elapsed() > LEASE_WAIT {
                return Err(self.db_error(format!(
                    "{what}: another replica has held the lease \"{LEASE}\" for over {}s; it expires by itself \
                     within {LEASE_FOR} of that replica's last key change",
                    LEASE_WAIT.as_secs()
                )));
            }
            drop(client);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Give the lease back (it would expire anyway).
    async fn release(&self) {
        let released = async {
            let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
            client
                .execute("UPDATE leases SET until = 0 WHERE name = $1 AND owner = $2", &[&LEASE, &self.owner])
                .await
                .map_err(|e| self.pg_error(&e))
        }
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "releasing the signing-key lease failed; it expires by itself");
        }
    }

    /// Tell the other replicas at once (the epoch check finds it anyway).
    async fn notify(&self) {
        let sent = async {
            let client = self.store.pooled().await.map_err(|e| self.pool_error(e))?;
            client.batch_execute(&format!("NOTIFY {CHANNEL}")).await.map_err(|e| self.pg_error(&e))
        }
        .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "NOTIFY of a key change failed; the replicas find it by the epoch");
        }
    }

    /// Wake `changed` whenever a key change is notified, on a connection of
    /// its own (re-opened after [`RELISTEN_AFTER`] when lost). Runs until
    /// aborted; without LISTEN support it warns once and keeps trying
    /// quietly (the epoch check remains).
    pub async fn listen(self: Arc<Self>, changed: Arc<tokio::sync::Notify>) {
        // Warn once, not every few seconds on a database without LISTEN.
        let mut warned = false;
        loop {
            let outcome = if self.url.requires_tls() {
                match native_tls::TlsConnector::new() {
                    Ok(c) => {
                        let config = super::connection_config(&self.url);
                        listen_on(&config, postgres_native_tls::MakeTlsConnector::new(c), &changed).await
                    }
                    Err(e) => Err(e.to_string()),
                }
            } else {
                listen_on(&super::connection_config(&self.url), NoTls, &changed).await
            };
            match outcome {
                Ok(()) => tracing::debug!("the LISTEN connection for key changes closed; reopening it"),
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(
                        error = %e,
                        "LISTEN for key changes failed; this replica still reloads keys by the epoch check every 2 s"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "LISTEN for key changes failed again"),
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }
}

/// One LISTEN connection, until it closes.
async fn listen_on<T>(config: &tokio_postgres::Config, tls: T, changed: &Arc<tokio::sync::Notify>) -> Result<(), String>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await.map_err(|e| super::describe(&e))?;
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let wake = changed.clone();
    let driver = tokio::spawn(async move {
        let outcome = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(super::describe(&e)),
                None => break Ok(()),
            }
        };
        let _ = closed_tx.send(outcome);
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|e| super::describe(&e))?;
    // Anything may have changed while we were not listening.
    changed.notify_one();
    let outcome = closed_rx.await.unwrap_or(Ok(()));
    driver.abort();
    drop(client);
    outcome
}

fn secs(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}
