//! Client authentication at the token, revocation and introspection
//! endpoints (RFC 6749 2.3.1; OIDC Core 9): `client_secret_basic`,
//! `client_secret_post` and `none` for public clients.
//!
//! Secrets are compared by argon2 (constant time) the first time and by a
//! keyed digest in constant time after that ([`VerifiedCache`]). Attempts are
//! counted per client and address before argon2 runs; concurrent requests
//! with the same (client, secret) share one argon2 run; argon2 runs are
//! bounded by the [`HashingPool`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::OnceCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::client::{Client, ClientKind};
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::throttle::{AttemptThrottle, Refusal, SharedCounts, ThrottleKey, ThrottleRules, Unshared};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::secret::{HashingPool, Secret, VerifiedCache, VerifyError};

/// How the client presented itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

/// What a request claims about its client, before verification.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    pub secret: Option<Secret>,
    pub method: AuthMethod,
}

/// Failed attempts allowed per client and address within the window.
pub const FAILURE_LIMIT: u32 = 10;
pub const FAILURE_WINDOW: Secs = Secs::minutes(5);
/// The longest lock after repeated failures (each lock doubles).
pub const LOCK_CAP: Secs = Secs::hours(1);

impl PresentedClient {
    /// Read the credentials from the `Authorization` header and the form.
    /// RFC 6749 2.3: a client must not use more than one method.
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<PresentedClient, OAuthError> {
        let form_id = params.get("client_id");
        let form_secret = params.get("client_secret");
        if let Some(header) = authorization {
            let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "the Authorization header must use the Basic scheme for client authentication",
                ));
            }
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: Basic credentials and client_secret were both sent (RFC 6749 2.3)",
                ));
            }
            let decoded =
                STANDARD.decode(rest.trim()).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
                    OAuthError::invalid_client("the Basic credentials are not valid base64 of id:secret")
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                OAuthError::invalid_client("the Basic credentials lack the ':' between id and secret")
            })?;
            // RFC 6749 2.3.1: both parts are form-urlencoded first.
            let id = form_decode(id);
            let secret = form_decode(secret);
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request("client_id in the body differs from the Basic credentials"));
            }
            return Ok(PresentedClient {
                client_id: id,
                secret: Some(Secret::new(secret)),
                method: AuthMethod::ClientSecretBasic,
            });
        }
        let client_id = form_id
            .ok_or_else(|| {
                OAuthError::invalid_client(
                    "client authentication is required: send Basic credentials, or client_id (and client_secret)",
                )
            })?
            .to_owned();
        match form_secret {
            Some(s) => {
                Ok(PresentedClient { client_id, secret: Some(Secret::new(s)), method: AuthMethod::ClientSecretPost })
            }
            None => Ok(PresentedClient { client_id, secret: None, method: AuthMethod::None }),
        }
    }
}

fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The registered clients and the state client authentication keeps.
///
/// Clients from the config file are fixed; clients created through the admin
/// API are added, replaced and removed at run time. Readers take a snapshot
/// (`Arc`) and never hold a lock across an await.
#[derive(Debug)]
pub struct ClientRegistry {
    clients: RwLock<Arc<HashMap<String, Arc<Client>>>>,
    from_config: HashSet<String>,
    guard: SecretGuard,
}

impl ClientRegistry {
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Result<ClientRegistry, ring::error::Unspecified> {
        let clients: HashMap<String, Arc<Client>> = clients.into_iter().map(|c| (c.id.clone(), Arc::new(c))).collect();
        Ok(ClientRegistry {
            from_config: clients.keys().cloned().collect(),
            clients: RwLock::new(Arc::new(clients)),
            guard: SecretGuard::new(HashingPool::default())?,
        })
    }

    /// Verify secrets through `pool` (shared with password checks).
    pub fn with_hashing(mut self, pool: HashingPool) -> ClientRegistry {
        self.guard.pool = pool;
        self
    }

    /// Count authentication failures in `shared` too (the store, so that
    /// every replica sees them).
    pub fn with_shared_throttle(mut self, shared: Arc<dyn SharedCounts>) -> ClientRegistry {
        self.guard.shared = shared;
        self
    }

    /// Put the run-time clients (those not from the config file) in force
    /// as `runtime` says, adding, replacing and removing (another replica
    /// changed them). A client whose secret is unchanged keeps its verified
    /// secret; a removed one, or one with a new secret, loses it.
    pub fn replace_runtime(&self, runtime: Vec<Client>) {
        let mut guard = match self.clients.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let secret = |c: &Client| match &c.kind {
            ClientKind::Confidential { secret_hash } => Some(secret_hash.clone()),
            ClientKind::Public => None,
        };
        let mut next: HashMap<String, Arc<Client>> = guard
            .iter()
            .filter(|(id, _)| self.from_config.contains(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for client in runtime {
            if self.from_config.contains(&client.id) {
                continue;
            }
            if guard.get(&client.id).map(|old| secret(old)) != Some(secret(&client)) {
                self.guard.forget(&client.id);
            }
            next.insert(client.id.clone(), Arc::new(client));
        }
        for gone in guard.keys().filter(|id| !next.contains_key(*id)) {
            self.guard.forget(gone);
        }
        *guard = Arc::new(next);
    }

    /// Every client by id, as of now.
    pub fn snapshot(&self) -> Arc<HashMap<String, Arc<Client>>> {
        match self.clients.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.snapshot().get(id).cloned()
    }

    /// Every client, sorted by id.
    pub fn all(&self) -> Vec<Arc<Client>> {
        let mut all: Vec<Arc<Client>> = self.snapshot().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Whether `id` is declared in the config file (read-only at run time).
    pub fn is_from_config(&self, id: &str) -> bool {
        self.from_config.contains(id)
    }

    /// Add or replace a run-time client. Its verified secret is forgotten, so
    /// a replaced secret stops working at once.
    pub fn put(&self, client: Client) {
        self.guard.forget(&client.id);
        let mut guard = match self.clients.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        next.insert(client.id.clone(), Arc::new(client));
        *guard = Arc::new(next);
    }

    /// Remove a run-time client; whether it was there.
    pub fn remove(&self, id: &str) -> bool {
        self.guard.forget(id);
        let mut guard = match self.clients.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**guard).clone();
        let existed = next.remove(id).is_some();
        *guard = Arc::new(next);
        existed
    }

    /// Whether `origin` is a registered web origin of a public client (CORS).
    pub fn allows_web_origin(&self, origin: &str) -> bool {
        self.snapshot().values().filter(|c| c.is_public()).any(|c| c.web_origins.iter().any(|o| o.as_str() == origin))
    }

    /// The throttle, verified-secret cache and hashing bound that
    /// authentication goes through (for clients looked up elsewhere).
    pub fn guard(&self) -> &SecretGuard {
        &self.guard
    }

    /// Authenticate `presented`, from `remote` (an address), at `now`.
    pub async fn authenticate(
        &self,
        presented: PresentedClient,
        remote: &str,
        now: UnixTime,
    ) -> Result<Arc<Client>, OAuthError> {
        let client = self.get(&presented.client_id);
        self.guard.authenticate(client, &presented, remote, now).await
    }
}

/// What client authentication keeps between requests: the failure
/// throttle, the verified-secret cache, the verifications in flight and the
/// hashing bound. It takes the client record, wherever it came from.
pub struct SecretGuard {
    throttle: AttemptThrottle,
    /// Where failures are counted for every replica.
    shared: Arc<dyn SharedCounts>,
    verified: VerifiedCache,
    pool: HashingPool,
    /// One argon2 run per (client, secret) at a time; later arrivals wait
    /// for its answer (single flight).
    in_flight: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
}

impl std::fmt::Debug for SecretGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretGuard").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl SecretGuard {
    pub fn new(pool: HashingPool) -> Result<SecretGuard, ring::error::Unspecified> {
        Ok(SecretGuard {
            throttle: AttemptThrottle::new(ThrottleRules {
                limit: FAILURE_LIMIT,
                window: FAILURE_WINDOW,
                lock_base: FAILURE_WINDOW,
                lock_cap: LOCK_CAP,
            }),
            shared: Arc::new(Unshared),
            verified: VerifiedCache::new()?,
            pool,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    pub fn throttle(&self) -> &AttemptThrottle {
        &self.throttle
    }

    pub fn pool(&self) -> &HashingPool {
        &self.pool
    }

    /// Forget the verified secret of client `id` (its secret changed).
    pub fn forget(&self, id: &str) {
        self.verified.forget(id);
    }

    /// Authenticate `presented` as `client` (`None`: no such client), from
    /// `remote`, at `now`. Failures are counted per client and address; an
    /// unknown client id is counted per address only, so made-up ids take
    /// no room.
    pub async fn authenticate(
        &self,
        client: Option<Arc<Client>>,
        presented: &PresentedClient,
        remote: &str,
        now: UnixTime,
    ) -> Result<Arc<Client>, OAuthError> {
        let key = match &client {
            Some(c) => ThrottleKey::of(&["client", &c.id, remote]),
            None => ThrottleKey::of(&["unknown client", remote]),
        };
        let throttled = |refusal: Refusal| {
            let retry_after_secs = refusal.retry_after_secs();
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable { retry_after_secs },
                format!(
                    "too many failed authentication attempts for client {} from this address; retry in {retry_after_secs} s",
                    shown_id(&presented.client_id)
                ),
            )
        };
        // No guess, no shared count: a public client sending no secret, and a
        // secret this process has already verified for this client, are
        // checked against the local throttle only, so the common request
        // costs no read of the shared counts (a database round trip with
        // PostgreSQL). Every other attempt consults them first.
        if let Some(c) = &client {
            let known_good = match (&c.kind, &presented.secret) {
                (ClientKind::Public, None) => true,
                (ClientKind::Confidential { .. }, Some(secret)) => self.verified.matches(&c.id, secret.expose()),
                _ => false,
            };
            if known_good {
                self.throttle.check(&key, now).map_err(throttled)?;
                self.throttle.clear(&key);
                return Ok(c.clone());
            }
        }
        let on_record = self.throttle.consult(&*self.shared, key, now).await;
        self.throttle.check(&key, now).map_err(throttled)?;
        let unknown = || {
            OAuthError::invalid_client(format!(
                "unknown client {} or wrong credentials",
                shown_id(&presented.client_id)
            ))
        };
        let refuse = |error: OAuthError| async move {
            self.throttle.reserve(key, now).map_err(throttled)?.failed(now);
            self.throttle.share_failure(&*self.shared, key, now).await;
            Err::<Arc<Client>, OAuthError>(error)
        };
        let Some(client) = client else { return refuse(unknown()).await };
        match (&client.kind, &presented.secret) {
            (ClientKind::Public, None) => Ok(client),
            (ClientKind::Public, Some(_)) => {
                refuse(OAuthError::invalid_client(format!(
                    "client {:?} is public and has no secret; send only client_id",
                    client.id
                )))
                .await
            }
            (ClientKind::Confidential { .. }, None) => {
                refuse(OAuthError::invalid_client(format!(
                    "client {:?} is confidential: authenticate with client_secret_basic or client_secret_post",
                    client.id
                )))
                .await
            }
            (ClientKind::Confidential { secret_hash }, Some(secret)) => {
                if self.verified.matches(&client.id, secret.expose()) {
                    self.throttle.clear(&key);
                    if on_record {
                        self.shared.clear(key).await;
                    }
                    return Ok(client);
                }
                let fingerprint = self.verified.fingerprint(&client.id, secret.expose());
                let flight = Flight::join(&self.in_flight, fingerprint);
                let outcome = flight
                    .cell
                    .get_or_try_init(|| async {
                        // Counted before argon2 runs (one slot for every
                        // request waiting on this same secret).
                        let reservation = self.throttle.reserve(key, now).map_err(throttled)?;
                        match self.pool.verify(secret_hash, secret).await {
                            Ok(true) => {
                                reservation.succeeded();
                                if on_record {
                                    self.shared.clear(key).await;
                                }
                                self.verified.remember(&client.id, secret.expose());
                                Ok(true)
                            }
                            Ok(false) => {
                                reservation.failed(now);
                                self.throttle.share_failure(&*self.shared, key, now).await;
                                Ok(false)
                            }
                            Err(VerifyError::Busy) => Err(busy()),
                            Err(VerifyError::Aborted) => Err(OAuthError::server_error()),
                        }
                    })
                    .await
                    .copied();
                drop(flight);
                match outcome? {
                    true => Ok(client),
                    false => Err(unknown()),
                }
            }
        }
    }
}

/// A request's share of one verification in flight. The last request to
/// leave takes the entry out of the table, also when it was abandoned.
struct Flight<'a> {
    table: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    fingerprint: [u8; 32],
    cell: Arc<OnceCell<bool>>,
}

impl<'a> Flight<'a> {
    fn join(table: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>, fingerprint: [u8; 32]) -> Flight<'a> {
        let cell = match table.lock() {
            Ok(mut m) => m.entry(fingerprint).or_default().clone(),
            Err(_) => Arc::new(OnceCell::new()),
        };
        Flight { table, fingerprint, cell }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.table.lock() {
            // Held by the table and by us only: nobody else is waiting. A
            // decided answer goes too: later requests use the cache or
            // count a fresh attempt.
            let last = Arc::strong_count(&self.cell) <= 2;
            if m.get(&self.fingerprint).is_some_and(|c| Arc::ptr_eq(c, &self.cell)) && (last || self.cell.initialized())
            {
                m.remove(&self.fingerprint);
            }
        }
    }
}

/// 503 when every hashing slot stays busy (SPEC 7: never a 500).
fn busy() -> OAuthError {
    OAuthError::new(
        ErrorCode::Overloaded { retry_after_secs: 1 },
        "the server is busy verifying other credentials; retry in 1 s",
    )
}

/// A client id as quoted in a message: at most 200 characters.
fn shown_id(id: &str) -> String {
    if id.chars().count() <= 200 {
        format!("{id:?}")
    } else {
        let head: String = id.chars().take(200).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn reads_each_method() {
        let p = PresentedClient::from_request(Some(&basic("web", "s%3Acret")), &Params::default()).expect("basic");
        assert_eq!((p.client_id.as_str(), p.method), ("web", AuthMethod::ClientSecretBasic));
        assert_eq!(p.secret.as_ref().map(Secret::expose), Some("s:cret"), "form-decoded per RFC 6749 2.3.1");
        let post = Params::from_pairs([("client_id", "web"), ("client_secret", "x")]);
        assert_eq!(PresentedClient::from_request(None, &post).expect("post").method, AuthMethod::ClientSecretPost);
        let none = Params::from_pairs([("client_id", "spa")]);
        assert_eq!(PresentedClient::from_request(None, &none).expect("none").method, AuthMethod::None);
    }

    #[test]
    fn refuses_mixed_or_malformed_credentials() {
        let post = Params::from_pairs([("client_secret", "x")]);
        assert_eq!(
            PresentedClient::from_request(Some(&basic("a", "b")), &post).expect_err("two methods").code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            PresentedClient::from_request(Some("Basic !!!"), &Params::default()).expect_err("b64").code,
            ErrorCode::InvalidClient
        );
        assert_eq!(
            PresentedClient::from_request(Some("Bearer x"), &Params::default()).expect_err("scheme").code,
            ErrorCode::InvalidClient
        );
        assert_eq!(
            PresentedClient::from_request(None, &Params::default()).expect_err("nothing").code,
            ErrorCode::InvalidClient
        );
        let other_id = Params::from_pairs([("client_id", "other")]);
        assert_eq!(
            PresentedClient::from_request(Some(&basic("a", "b")), &other_id).expect_err("ids differ").code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn replacing_the_run_time_clients_adds_replaces_and_removes_but_keeps_config_clients() {
        let text = r#"
[[clients]]
id = "svc"
secret = "s"
grant_types = ["client_credentials"]

[[clients]]
id = "made-at-a"
secret = "t"
grant_types = ["client_credentials"]

[[clients]]
id = "also-at-a"
secret = "u"
grant_types = ["client_credentials"]
"#;
        let mut clients = crate::oauth::client_spec::clients_from_toml(text);
        let runtime = clients.split_off(1);
        let registry = ClientRegistry::new(clients).expect("registry");
        registry.put(runtime[0].clone());
        // Another replica: "made-at-a" deleted, "also-at-a" created, and a
        // stored "svc" never shadows the config's.
        let mut shadow = runtime[1].clone();
        shadow.id = "svc".into();
        registry.replace_runtime(vec![runtime[1].clone(), shadow]);
        let ids: Vec<String> = registry.all().iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, ["also-at-a", "svc"]);
        assert!(registry.is_from_config("svc"));
        assert!(matches!(registry.get("svc").expect("svc").kind, ClientKind::Confidential { .. }));
        registry.replace_runtime(Vec::new());
        assert_eq!(registry.all().len(), 1, "only the config client is left");
    }

    #[test]
    fn web_origins_are_those_of_public_clients_exactly() {
        let text = r#"
[[clients]]
id = "spa"
public = true
web_origins = ["http://127.0.0.1:9001/", "https://app.example"]
grant_types = ["refresh_token"]

[[clients]]
id = "svc"
secret = "s"
grant_types = ["client_credentials"]
"#;
        let mut clients = crate::oauth::client_spec::clients_from_toml(text);
        // A confidential client cannot register web origins (config.rs); were
        // one to carry them anyway, they would not be served.
        clients[1].web_origins = vec![crate::oauth::client::WebOrigin::parse("https://web.example").expect("origin")];
        let registry = ClientRegistry::new(clients).expect("registry");
        assert!(registry.allows_web_origin("http://127.0.0.1:9001"), "a trailing / in the config is tolerated");
        assert!(registry.allows_web_origin("https://app.example"));
        assert!(!registry.allows_web_origin("https://web.example"), "confidential client");
        for other in [
            "http://127.0.0.1:9001/",
            "http://127.0.0.1:9002",
            "https://127.0.0.1:9001",
            "HTTPS://APP.EXAMPLE",
            "null",
            "",
        ] {
            assert!(!registry.allows_web_origin(other), "{other:?}");
        }
    }
}
