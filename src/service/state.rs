//! The issuer's state, built once at start-up: what every use case reads
//! (configuration, clients, keys, policy, store). `http/` and the background
//! workers hold it; nothing here knows HTTP.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ring::hmac;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::duration::Secs;
use crate::oauth::client_auth::ClientRegistry;
use crate::oauth::throttle::{AttemptThrottle, ThrottleRules};
use crate::policy::{Groups, PolicyHistory, PolicyLayers, PolicySources, SessionPolicy};
use crate::secret::{HashingPool, PasswordHashString, Secret};
use crate::session::refresh_token::RefreshKey;
use crate::store::key_store::KeyStore;
use crate::store::{AnyStore, Store, StoreError};
use crate::telemetry::Metrics;
use crate::token::keys::{KeyDir, KeySet, retention};
use crate::token::master_key::{MasterKey, Purpose};
use crate::user::User;

/// Failed sign-ins allowed per username and address within the window;
/// the lock after them starts at the window and doubles up to the cap.
pub const SIGN_IN_FAILURE_LIMIT: u32 = 5;
pub const SIGN_IN_FAILURE_WINDOW: Secs = Secs::minutes(5);
pub const SIGN_IN_LOCK_CAP: Secs = Secs::hours(1);
/// Failed sign-ins allowed per address, whatever the usernames (spraying).
pub const SIGN_IN_ADDRESS_FAILURE_LIMIT: u32 = 20;

/// The sign-in throttles: per (username, address) and per address.
#[derive(Debug)]
pub struct SignInThrottles {
    pub user_address: AttemptThrottle,
    pub address: AttemptThrottle,
}

impl Default for SignInThrottles {
    fn default() -> Self {
        let rules = |limit| ThrottleRules {
            limit,
            window: SIGN_IN_FAILURE_WINDOW,
            lock_base: SIGN_IN_FAILURE_WINDOW,
            lock_cap: SIGN_IN_LOCK_CAP,
        };
        SignInThrottles {
            user_address: AttemptThrottle::new(rules(SIGN_IN_FAILURE_LIMIT)),
            address: AttemptThrottle::new(rules(SIGN_IN_ADDRESS_FAILURE_LIMIT)),
        }
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub clock: Arc<dyn Clock>,
    pub issuer: String,
    pub config: Config,
    pub clients: ClientRegistry,
    pub users: HashMap<String, User>,
    /// Verified against when the username is unknown, so a failed sign-in
    /// takes the same time whether or not the user exists.
    pub dummy_password_hash: PasswordHashString,
    pub sign_in_throttles: SignInThrottles,
    /// Failed sign-ins, one audit record per (username, address) and hour.
    pub failed_sign_ins: crate::service::failed_sign_ins::FailureAggregator,
    /// The bound on concurrent argon2 runs (sign-in and client secrets).
    pub hashing: HashingPool,
    pub refresh_key: RefreshKey,
    pub csrf_key: hmac::Key,
    /// DPoP (RFC 9449): nonce key, nonce requirement (the proofs seen are in
    /// the store).
    pub dpop: crate::oauth::dpop::Dpop,
    /// Access tokens whose signature was verified (see `token::verified`).
    pub verified: crate::token::verified::VerifiedTokens,
    /// Where the signing keys live: `keys_dir` (sled) or the database.
    pub key_store: KeyStore,
    keys: RwLock<Arc<KeySet>>,
    policy: RwLock<Arc<(SessionPolicy, PolicySources)>>,
    history: RwLock<Arc<PolicyHistory>>,
    /// The group policies in force (SPEC 14): the file's, admin-set over them.
    groups: RwLock<Arc<Groups>>,
    /// Serialises changes of the session settings.
    pub settings_lock: tokio::sync::Mutex<()>,
    /// The backend chosen at start-up (`store` in the configuration).
    pub store: AnyStore,
    pub metrics: Metrics,
    /// The revocation feed's bounds: SET signing, verification requests.
    pub feed: crate::ssf::FeedGuards,
    /// The first run's one-time setup token (SPEC 9 "First run").
    pub first_run: crate::service::setup::FirstRun,
    /// The epoch the cached settings and clients were loaded at (`fresh`).
    pub caches: crate::service::fresh::SharedCaches,
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
    #[error("clients: the id \"console\" is reserved for the built-in web console client; choose another id")]
    ReservedClient,
    #[error("the built-in console client cannot be built for this issuer: {0}")]
    ConsoleClient(String),
    #[error("cannot initialise the random number generator")]
    Random,
    #[error("cannot prepare the sign-in timing guard: {0}")]
    Hash(String),
    #[error(transparent)]
    PublishAhead(#[from] crate::store::key_store::PublishAheadTooShort),
    /// A config user or client takes a subject the store already gave
    /// (RFC 9700 4.15; names are never given again).
    #[error("{0}")]
    SubjectTaken(String),
}

/// A config user must not take the id of a client created through the admin
/// API or a name retired by a deletion; a config client must not take the
/// name of a stored or deleted user (RFC 9700 4.15: a client id never
/// collides with a user's subject, and a subject is never given again).
async fn check_config_subjects(config: &Config, clients: &ClientRegistry, store: &AnyStore) -> Result<(), StartError> {
    use crate::store::RetiredName;
    for user in &config.users {
        let name = &user.username;
        if clients.get(name).is_some() {
            return Err(StartError::SubjectTaken(format!(
                "users[{name}].username is also the id of a client (created through the admin API, or built in); \
                 a user must never share a client's subject: rename the user or delete that client"
            )));
        }
        if let Some(kind) = store.retired_name(name).await? {
            return Err(StartError::SubjectTaken(format!(
                "users[{name}].username was the {} of a deleted {}; a subject is never given again: choose \
                 another username",
                if kind == RetiredName::User { "username" } else { "id" },
                kind.as_str()
            )));
        }
    }
    for client in &config.clients {
        let id = &client.id;
        if store.user(id).await?.is_some() || store.retired_name(id).await? == Some(RetiredName::User) {
            return Err(StartError::SubjectTaken(format!(
                "clients[{id}].id is the username of a user created (or deleted) through the admin API; a client \
                 id must never share a user's subject: choose another id"
            )));
        }
    }
    Ok(())
}

impl AppState {
    /// Build the state: load the admin-set policy layer from the store,
    /// make sure a signing key exists, and load the key set.
    pub async fn new(
        config: Config,
        issuer: String,
        store: AnyStore,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, StartError> {
        let key_store = KeyStore::Dir(KeyDir::new(&config.keys_dir));
        Self::with_key_store(config, issuer, store, clock, key_store).await
    }

    /// [`AppState::new`] with the signing keys in `key_store` (the
    /// database's, with PostgreSQL).
    pub async fn with_key_store(
        config: Config,
        issuer: String,
        store: AnyStore,
        clock: Arc<dyn Clock>,
        key_store: KeyStore,
    ) -> Result<AppState, StartError> {
        crate::store::key_store::check_publish_ahead(&key_store, config.key_publish_ahead)?;
        let now = clock.now();
        let layers = PolicyLayers { admin: store.admin_policy().await?, ..config.policy_layers.clone() };
        let resolved = layers.resolve().map_err(|e| StartError::AdminPolicy(Box::new(e)))?;
        // SPEC 3: a changed policy applies to live sessions from now on; the
        // history keeps earlier ones so loosening never revives the dead.
        let stored = store.policy_history().await?;
        let history = match stored.clone() {
            None => PolicyHistory::new(now, resolved.0.clone()),
            Some(mut h) => {
                h.change(now, resolved.0.clone());
                h
            }
        };
        if stored.as_ref() != Some(&history) {
            store.set_policy(None, &history, None).await?;
        }
        for created in key_store.ensure_active(config.signing_alg, now, config.key_publish_ahead).await? {
            tracing::info!(
                kid = %created.kid,
                alg = %created.alg,
                role = created.role.as_str(),
                active_from = %created.active_from(),
                place = %key_store.describe(),
                "generated a new signing key"
            );
        }
        let groups = Groups::merge(&config.groups, &store.admin_groups().await?);
        let keep = retention(resolved.0.access_token_ttl());
        for kid in key_store.prune(now, keep).await? {
            tracing::info!(%kid, "retired signing key deleted: every token it signed has expired");
        }
        let keys = key_store.load().await?;
        let master = MasterKey::load_or_create(&config.keys_dir)?;
        let metrics = Metrics::new();
        let hashing =
            HashingPool::new(config.hashing_concurrency, std::time::Duration::from_secs(config.hashing_wait.as_secs()))
                .with_counters(metrics.secret_verifications.clone(), metrics.hashing_busy.clone());
        // SPEC 9: the console's client is built in, beside the config's.
        if config.clients.iter().any(|c| c.id == crate::oauth::console_client::CLIENT_ID) {
            return Err(StartError::ReservedClient);
        }
        let console = crate::oauth::console_client::builtin_client(&issuer).map_err(StartError::ConsoleClient)?;
        let clients = ClientRegistry::new(config.clients.iter().cloned().chain([console]))
            .map_err(|_| StartError::Random)?
            .with_hashing(hashing.clone())
            // Replicas (issue #9): client-authentication failures counted in the store.
            .with_shared_throttle(Arc::new(store.clone()));
        for stored in store.clients().await? {
            let id = stored.spec.id.clone();
            if clients.is_from_config(&id) {
                tracing::warn!(client = %id, "a client created through the admin API has the id of a config client; the config one wins");
                continue;
            }
            match stored.into_client(config.signing_alg) {
                Ok(client) => clients.put(client),
                Err(message) => {
                    return Err(StartError::Store(crate::store::StoreError::Corrupt {
                        what: format!("client {id}"),
                        message,
                    }));
                }
            }
        }
        check_config_subjects(&config, &clients, &store).await?;
        let users = config.users.iter().map(|u| (u.username.clone(), u.clone())).collect();
        let dummy_password_hash = PasswordHashString::hash(&Secret::new(crate::session::new_id()))
            .map_err(|e| StartError::Hash(e.to_string()))?;
        let dpop = crate::oauth::dpop::Dpop::new(
            crate::oauth::dpop::NonceKey::new(master.derive(Purpose::DpopNonce)),
            config.dpop_nonce_required,
        );
        Ok(AppState(Arc::new(Inner {
            clock,
            issuer,
            config,
            clients,
            users,
            dummy_password_hash,
            sign_in_throttles: SignInThrottles::default(),
            failed_sign_ins: crate::service::failed_sign_ins::FailureAggregator::default(),
            hashing,
            refresh_key: RefreshKey::new(master.derive(Purpose::RefreshToken)),
            csrf_key: master.derive(Purpose::Csrf),
            dpop,
            verified: crate::token::verified::VerifiedTokens::new(),
            key_store,
            keys: RwLock::new(Arc::new(keys)),
            policy: RwLock::new(Arc::new(resolved)),
            history: RwLock::new(Arc::new(history)),
            groups: RwLock::new(Arc::new(groups)),
            settings_lock: tokio::sync::Mutex::new(()),
            store,
            metrics,
            feed: Default::default(),
            first_run: Default::default(),
            caches: Default::default(),
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

    /// Reload the signing keys (after a rotation here, by `tenure keys
    /// rotate` or by another replica).
    pub async fn reload_keys(&self) -> Result<(), crate::token::keys::KeyError> {
        let fresh = Arc::new(self.key_store.load().await?);
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

    /// The policies in force so far; `current()` is the effective one.
    pub fn history(&self) -> Arc<PolicyHistory> {
        match self.history.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put a new effective policy in force (after it was persisted).
    pub fn set_policy(&self, resolved: (SessionPolicy, PolicySources), history: PolicyHistory) {
        match self.policy.write() {
            Ok(mut p) => *p = Arc::new(resolved),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(resolved),
        }
        match self.history.write() {
            Ok(mut h) => *h = Arc::new(history),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(history),
        }
    }

    /// The group policies in force.
    pub fn groups(&self) -> Arc<Groups> {
        match self.groups.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put new group policies in force (after they were persisted).
    pub fn set_groups(&self, groups: Groups) {
        match self.groups.write() {
            Ok(mut g) => *g = Arc::new(groups),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(groups),
        }
    }

    /// The policies in force so far as `username` sees them: every one
    /// tightened by the strictest values of the user's groups (SPEC 14), so
    /// a group or membership change applies at the next check. Reads the
    /// user only when some group exists and the user is not in the config:
    /// one point read, never a scan.
    pub async fn user_history(&self, username: &str) -> Result<Arc<PolicyHistory>, StoreError> {
        if self.groups().0.is_empty() {
            return Ok(self.history());
        }
        let member_of = match self.users.get(username) {
            Some(u) => u.groups.clone(),
            None => self.store.user(username).await?.map(|u| u.groups).unwrap_or_default(),
        };
        Ok(self.history_of_member(&member_of))
    }

    /// The policies in force as a member of the groups `member_of` sees
    /// them (the user already read).
    pub fn history_of_member(&self, member_of: &[String]) -> Arc<PolicyHistory> {
        let history = self.history();
        if member_of.is_empty() {
            return history;
        }
        let groups = self.groups();
        let strictest = crate::policy::strictest(groups.of(member_of).into_iter().map(|(_, g)| g));
        history.for_groups(&strictest).map_or(history, Arc::new)
    }

    /// A user who may sign in: declared in the config (which wins), else
    /// kept in the store and not disabled.
    pub async fn user(&self, username: &str) -> Result<Option<User>, crate::store::StoreError> {
        Ok(self.any_user(username).await?.filter(|u| !u.disabled))
    }

    /// A user, disabled or not (the admin API).
    pub async fn any_user(&self, username: &str) -> Result<Option<User>, crate::store::StoreError> {
        match self.users.get(username) {
            Some(u) => Ok(Some(u.clone())),
            None => self.store.user(username).await,
        }
    }

    /// Whether tokens and cookies travel over https (cookies get `Secure`).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Keep session records this long after sign-in: no policy can make
    /// them live longer than the ceiling, and an ended session stays listed
    /// (SPEC 14) for [`ENDED_LISTED`](crate::session::end::ENDED_LISTED)
    /// after its end.
    pub fn keep_until(&self, signed_in: crate::clock::UnixTime) -> crate::clock::UnixTime {
        signed_in.plus(self.history().current().max_lifetime_ceiling).plus(crate::session::end::ENDED_LISTED)
    }

    /// How long retired keys stay in the JWKS under the current policy.
    pub fn key_retention(&self) -> Secs {
        retention(self.policy().0.access_token_ttl())
    }

    /// The longest lifetime (`exp - iat`) a token of ours may claim: no
    /// policy lets an access token live longer than the ceiling.
    pub fn max_token_lifetime(&self) -> Secs {
        self.history().current().max_lifetime_ceiling
    }
}

impl crate::user::Directory for AppState {
    fn find<'a>(
        &'a self,
        username: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<User>> + Send + 'a>> {
        Box::pin(async move { self.user(username).await.ok().flatten() })
    }
}

impl AppState {
    /// Load the session policy and the run-time clients from the store again
    /// and put them in force (another replica changed them; the worker
    /// `worker::replica::follow_changes` notices).
    pub async fn reload_shared(&self) -> Result<(), ReloadError> {
        let admin = self.store.admin_policy().await?;
        let layers = PolicyLayers { admin, ..self.config.policy_layers.clone() };
        let resolved = layers.resolve().map_err(|e| ReloadError::Policy(e.to_string()))?;
        let history = match self.store.policy_history().await? {
            Some(h) => h,
            None => PolicyHistory::new(self.now(), resolved.0.clone()),
        };
        let groups = Groups::merge(&self.config.groups, &self.store.admin_groups().await?);
        let mut clients = Vec::new();
        for stored in self.store.clients().await? {
            let id = stored.spec.id.clone();
            if self.clients.is_from_config(&id) {
                continue;
            }
            match stored.into_client(self.config.signing_alg) {
                Ok(client) => clients.push(client),
                Err(message) => {
                    tracing::error!(client = %id, %message, "a stored client cannot be loaded; skipping it")
                }
            }
        }
        self.set_policy(resolved, history);
        self.set_groups(groups);
        self.clients.replace_runtime(clients);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session settings in the store are invalid here: {0}")]
    Policy(String),
}

#[cfg(test)]
impl AppState {
    /// A state for unit tests: the default configuration with its keys in
    /// `dir`, sled in memory, a manual clock at `at`.
    pub async fn for_tests(dir: &tempfile::TempDir, at: UnixTime) -> AppState {
        let text = format!("keys_dir = \"{}\"\n", dir.path().join("keys").display());
        let config = Config::from_toml(&text, &Default::default()).expect("config");
        let store = crate::store::SledStore::temporary().expect("store");
        let clock = Arc::new(crate::clock::ManualClock::at(at));
        AppState::new(config, "http://issuer.test".into(), store.into(), clock).await.expect("state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyLayer;

    const T0: UnixTime = UnixTime(1_700_000_000);

    #[tokio::test]
    async fn a_reload_puts_the_stored_settings_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = AppState::for_tests(&dir, T0).await;
        assert_ne!(state.policy().0.access_token_ttl(), Secs::minutes(20));
        // What another replica wrote.
        let admin = PolicyLayer { access_token_ttl: Some(Secs::minutes(20)), ..Default::default() };
        let resolved = PolicyLayers { admin: admin.clone(), ..Default::default() }.resolve().expect("valid");
        let mut history = (*state.history()).clone();
        history.change(T0.plus(Secs::new(5)), resolved.0);
        state.store.set_policy(Some(&admin), &history, None).await.expect("stored");

        state.reload_shared().await.expect("reload");
        assert_eq!(state.policy().0.access_token_ttl(), Secs::minutes(20));
        assert_eq!(*state.history(), history);
    }
}
