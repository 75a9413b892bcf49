//! Where the signing keys live, chosen at start-up with the store: the key
//! directory (`keys_dir`, with sled) or the database (with PostgreSQL, so
//! every replica signs with and publishes the same keys). The same
//! operations over either; see `token::keys` for what they do.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::store::postgres::keys::DbKeys;
use crate::token::SigningAlg;
use crate::token::keys::{KeyDir, KeyError, KeyRecord, KeySet, Manifest, Revocation, Rotation};

/// How often a running server checks whether the keys changed (the key
/// directory's manifest, or the database's key epoch).
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub enum KeyStore {
    Dir(KeyDir),
    Database(Arc<DbKeys>),
}

/// What changes when the keys change: the manifest's modification time, or
/// the database's key epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVersion {
    Modified(Option<std::time::SystemTime>),
    Epoch(i64),
}

/// Why a key store cannot serve with this configuration.
#[derive(Debug, thiserror::Error)]
#[error(
    "key_publish_ahead = {ahead} is shorter than the {reload}s in which every replica reloads the signing keys \
     from the database: a replica could sign with a key the others do not publish yet. Set key_publish_ahead to \
     at least {reload}s (the default is 10 minutes)",
    reload = RELOAD_EVERY.as_secs()
)]
pub struct PublishAheadTooShort {
    pub ahead: Secs,
}

/// With several replicas, a new key must be published by every replica
/// before any signs with it: the publish-ahead period must cover a reload.
pub fn check_publish_ahead(store: &KeyStore, ahead: Secs) -> Result<(), PublishAheadTooShort> {
    match store {
        KeyStore::Database(_) if ahead.as_secs() < RELOAD_EVERY.as_secs() => Err(PublishAheadTooShort { ahead }),
        _ => Ok(()),
    }
}

fn join<T>(r: Result<Result<T, KeyError>, tokio::task::JoinError>) -> Result<T, KeyError> {
    r.map_err(|e| KeyError::Task(e.to_string()))?
}

impl KeyStore {
    /// Where the keys are, for logs: a directory or a database.
    pub fn describe(&self) -> String {
        match self {
            KeyStore::Dir(d) => format!("directory {}", d.path().display()),
            KeyStore::Database(db) => format!("database {}", db.target()),
        }
    }

    /// The records with their order (`keys list`).
    pub async fn records(&self) -> Result<Manifest, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let d = d.clone();
                join(tokio::task::spawn_blocking(move || d.read_manifest()).await)
            }
            KeyStore::Database(db) => db.records().await,
        }
    }

    pub async fn ensure_active(
        &self,
        alg: SigningAlg,
        now: UnixTime,
        publish_ahead: Secs,
    ) -> Result<Vec<KeyRecord>, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let d = d.clone();
                join(tokio::task::spawn_blocking(move || d.ensure_active(alg, now, publish_ahead)).await)
            }
            KeyStore::Database(db) => db.ensure_active(alg, now, publish_ahead).await,
        }
    }

    pub async fn rotate(&self, alg: SigningAlg, now: UnixTime, publish_ahead: Secs) -> Result<Rotation, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let d = d.clone();
                join(tokio::task::spawn_blocking(move || d.rotate(alg, now, publish_ahead)).await)
            }
            KeyStore::Database(db) => db.rotate(alg, now, publish_ahead).await,
        }
    }

    pub async fn revoke(&self, kid: &str, now: UnixTime) -> Result<Revocation, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let (d, kid) = (d.clone(), kid.to_owned());
                join(tokio::task::spawn_blocking(move || d.revoke(&kid, now)).await)
            }
            KeyStore::Database(db) => db.revoke(kid, now).await,
        }
    }

    pub async fn prune(&self, now: UnixTime, retain: Secs) -> Result<Vec<String>, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let d = d.clone();
                join(tokio::task::spawn_blocking(move || d.prune(now, retain)).await)
            }
            KeyStore::Database(db) => db.prune(now, retain).await,
        }
    }

    pub async fn load(&self) -> Result<KeySet, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let d = d.clone();
                join(tokio::task::spawn_blocking(move || d.load()).await)
            }
            KeyStore::Database(db) => db.load().await,
        }
    }

    /// What the reload loop compares.
    pub async fn version(&self) -> Result<KeyVersion, KeyError> {
        match self {
            KeyStore::Dir(d) => {
                let manifest = d.manifest_path();
                Ok(KeyVersion::Modified(std::fs::metadata(&manifest).and_then(|m| m.modified()).ok()))
            }
            KeyStore::Database(db) => db.epoch().await.map(KeyVersion::Epoch),
        }
    }
}

/// The database's key store: the sealing key derived from
/// `keys_dir/master.key`, the keys in `store`. The master key is created on
/// a first start only: when the database already holds sealed keys, a
/// missing file is an error naming the file to mount (a new key would not
/// open them).
pub async fn database(
    store: crate::store::postgres::PgStore,
    url: &crate::store::postgres::DatabaseUrl,
    keys_dir: &std::path::Path,
) -> Result<KeyStore, KeyError> {
    use crate::token::master_key::{FILE, MasterKey};
    let master = match MasterKey::load(keys_dir)? {
        Some(master) => master,
        None if crate::store::postgres::keys::holds_sealed_keys(&store).await? => {
            return Err(KeyError::MasterKeyMissing { path: keys_dir.join(FILE), target: store.target().to_owned() });
        }
        None => MasterKey::create(keys_dir)?,
    };
    Ok(KeyStore::Database(Arc::new(DbKeys::new(store, url.clone(), master.sealing_key()?))))
}
