//! Shared state of the HTTP layer, built once at start-up.

use std::sync::{Arc, RwLock};

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::duration::Secs;
use crate::oauth::client_auth::ClientRegistry;
use crate::policy::{PolicyLayers, PolicySources, SessionPolicy};
use crate::store::{SledStore, Store};
use crate::telemetry::Metrics;
use crate::token::keys::{KeyDir, KeySet, retention};

/// The store implementation in use (PostgreSQL will sit beside it).
pub type StoreImpl = SledStore;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub clock: Arc<dyn Clock>,
    pub issuer: String,
    pub config: Config,
    pub clients: ClientRegistry,
    pub key_dir: KeyDir,
    keys: RwLock<Arc<KeySet>>,
    policy: RwLock<Arc<(SessionPolicy, PolicySources)>>,
    pub store: StoreImpl,
    pub metrics: Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] crate::token::keys::KeyError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0} (set through the admin API; reset it with DELETE /admin/settings/session)")]
    AdminPolicy(Box<crate::policy::PolicyError>),
    #[error("cannot initialise the random number generator")]
    Random,
}

impl AppState {
    /// Build the state: load the admin-set policy layer from the store,
    /// make sure a signing key exists, and load the key set.
    pub fn new(
        config: Config,
        issuer: String,
        store: StoreImpl,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, StartError> {
        let now = clock.now();
        let layers = PolicyLayers { admin: store.admin_policy()?, ..config.policy_layers.clone() };
        let resolved = layers.resolve().map_err(|e| StartError::AdminPolicy(Box::new(e)))?;
        let key_dir = KeyDir::new(&config.keys_dir);
        if let Some(created) = key_dir.ensure_active(config.signing_alg, now)? {
            tracing::info!(kid = %created.kid, alg = %created.alg, dir = %key_dir.path().display(), "generated a new signing key");
        }
        let keep = retention(resolved.0.access_token_ttl());
        for kid in key_dir.prune(now, keep)? {
            tracing::info!(%kid, "retired signing key deleted: every token it signed has expired");
        }
        let keys = key_dir.load()?;
        let clients = ClientRegistry::new(config.clients.clone()).map_err(|_| StartError::Random)?;
        Ok(AppState(Arc::new(Inner {
            clock,
            issuer,
            config,
            clients,
            key_dir,
            keys: RwLock::new(Arc::new(keys)),
            policy: RwLock::new(Arc::new(resolved)),
            store,
            metrics: Metrics::new(),
        })))
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reload the key directory (after `tenure keys rotate`).
    pub fn reload_keys(&self) -> Result<(), crate::token::keys::KeyError> {
        let fresh = Arc::new(self.key_dir.load()?);
        match self.keys.write() {
            Ok(mut k) => *k = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// The effective global session policy.
    pub fn policy(&self) -> Arc<(SessionPolicy, PolicySources)> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How long retired keys stay in the JWKS under the current policy.
    pub fn key_retention(&self) -> Secs {
        retention(self.policy().0.access_token_ttl())
    }
}
