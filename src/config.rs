//! Configuration: built-in defaults, then `tenure.toml`, then `TENURE_*`
//! environment variables (SPEC section 8), parsed and validated once into a
//! typed [`Config`]. Unknown keys in the file and unknown `TENURE_*` variables
//! are errors, so a typo never silently does nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::duration::Secs;
use crate::net::{IpNet, OutboundTargets, TrustedProxies};
use crate::oauth::client::{Client, Permission};
use crate::oauth::client_spec::ClientSpec;
use crate::policy::{
    ClientSessionOverride, GroupPolicy, POLICY_KEYS, PolicyError, PolicyLayer, PolicyLayers, SessionPolicy,
};
use crate::secret::{PasswordHashString, Secret};
use crate::store::postgres::DatabaseUrl;
use crate::token::SigningAlg;
use crate::user::User;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONFIG_FILE: &str = "tenure.toml";
/// How long a rotated key is published before it signs (`key_publish_ahead`):
/// longer than common JWKS caches wait before refetching for an unknown kid.
pub const DEFAULT_KEY_PUBLISH_AHEAD: Secs = Secs::minutes(10);
/// The longest `key_publish_ahead` accepted.
pub const MAX_KEY_PUBLISH_AHEAD: Secs = Secs::days(1);
/// How long a device code may be polled for (`device_code_ttl`, SPEC 15).
pub const DEFAULT_DEVICE_CODE_TTL: Secs = Secs::minutes(10);
/// The longest `device_code_ttl` accepted: a user code is guessable over
/// time (RFC 8628 5.1), so it must not live for long.
pub const MAX_DEVICE_CODE_TTL: Secs = Secs::hours(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration that could not be loaded; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("unknown environment variable {var}; known TENURE_* variables: {known}")]
    UnknownEnv { var: String, known: String },
    #[error("{0}")]
    Policy(Box<PolicyError>),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl From<PolicyError> for ConfigError {
    fn from(e: PolicyError) -> Self {
        ConfigError::Policy(Box::new(e))
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The file's shape. All optional; defaults come from [`Config::load`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    issuer: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    signing_alg: Option<String>,
    key_publish_ahead: Option<String>,
    device_code_ttl: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    hashing_concurrency: Option<usize>,
    hashing_wait: Option<String>,
    dpop_nonce: Option<String>,
    store: Option<String>,
    database_url: Option<Secret>,
    database_pool_size: Option<usize>,
    /// The `[session]` table: the policy keys, and `[session.groups.NAME]`
    /// (SPEC 14), split apart by [`split_session_table`].
    #[serde(default)]
    session: toml::Table,
    #[serde(default)]
    server: ServerEntry,
    #[serde(default)]
    feed: FeedEntry,
    #[serde(default)]
    logout: LogoutEntry,
    #[serde(default)]
    clients: Vec<ClientEntry>,
    #[serde(default)]
    users: Vec<UserEntry>,
}

/// The `[server]` table: connection limits (not the session's timeouts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntry {
    request_header_timeout: Option<crate::duration::Secs>,
    request_body_timeout: Option<crate::duration::Secs>,
    keep_alive_timeout: Option<crate::duration::Secs>,
    first_byte_timeout: Option<crate::duration::Secs>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_requests_per_connection: Option<usize>,
}

/// The `[feed]` table: the revocation feed (docs/feed.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedEntry {
    allowed_private_networks: Option<Vec<String>>,
}

/// The `[logout]` table: back-channel logout (docs/configuration.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutEntry {
    allowed_private_networks: Option<Vec<String>>,
}

/// Connection limits of the HTTP server (`[server]`, operations doc
/// "Connection limits and timeouts"). These are about sockets, not the
/// session policy: `keep_alive_timeout` closes an idle connection, never a
/// user session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// From the first byte of a request to the end of its head.
    pub request_header_timeout: std::time::Duration,
    /// From the end of the head to the end of the body; 408 after it.
    pub request_body_timeout: std::time::Duration,
    /// How long a connection with no request in progress stays open.
    pub keep_alive_timeout: std::time::Duration,
    /// How long a new connection may stay silent before its first byte
    /// (at most `keep_alive_timeout` applies).
    pub first_byte_timeout: std::time::Duration,
    /// Connections served at once; more wait (a few accepted, the rest in
    /// the listen backlog) while the longest-held ones are turned over.
    pub max_connections: usize,
    /// Connections one client address may hold at once (served or waiting);
    /// connections from `trusted_proxies` are not counted per address.
    pub max_connections_per_address: usize,
    /// Requests served on one kept-alive connection; the last one's response
    /// carries `Connection: close`.
    pub max_requests_per_connection: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            request_header_timeout: std::time::Duration::from_secs(10),
            request_body_timeout: std::time::Duration::from_secs(30),
            keep_alive_timeout: std::time::Duration::from_secs(60),
            first_byte_timeout: std::time::Duration::from_secs(5),
            max_connections: 4096,
            max_connections_per_address: 256,
            max_requests_per_connection: 1000,
        }
    }
}

/// The longest any connection timeout may be set to.
const MAX_CONNECTION_TIMEOUT: crate::duration::Secs = crate::duration::Secs::hours(1);
/// The most connections `max_connections` (and the per-address limit) may
/// allow.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// The most requests `max_requests_per_connection` may allow.
const MAX_REQUESTS_PER_CONNECTION_LIMIT: usize = 1_000_000_000;

fn build_server_limits(file: ServerEntry, env: &BTreeMap<String, String>) -> Result<ServerLimits, ConfigError> {
    use crate::duration::Secs;
    let defaults = ServerLimits::default();
    let timeout = |name: &str, from_file: Option<Secs>, default: std::time::Duration| {
        let var = format!("TENURE_SERVER_{}", name.to_ascii_uppercase());
        let value = match env.get(&var) {
            Some(raw) => {
                raw.parse::<Secs>().map_err(|e| ConfigError::Env { var: var.clone(), message: e.to_string() })?
            }
            None => match from_file {
                Some(v) => v,
                None => return Ok(default),
            },
        };
        if value.is_zero() || value > MAX_CONNECTION_TIMEOUT {
            return Err(invalid(
                format!("server.{name}"),
                format!("must be more than 0s and at most {MAX_CONNECTION_TIMEOUT}, not {value}"),
            ));
        }
        Ok(std::time::Duration::from_secs(value.as_secs()))
    };
    let count = |name: &str, from_file: Option<usize>, default: usize, most: usize| {
        let var = format!("TENURE_SERVER_{}", name.to_ascii_uppercase());
        let value = match env.get(&var) {
            Some(raw) => Some(raw.trim().parse::<usize>().map_err(|_| ConfigError::Env {
                var: var.clone(),
                message: format!("{raw:?} is not a whole number"),
            })?),
            None => from_file,
        }
        .unwrap_or(default);
        if !(1..=most).contains(&value) {
            return Err(invalid(format!("server.{name}"), format!("must be between 1 and {most}, not {value}")));
        }
        Ok(value)
    };
    let max_connections =
        count("max_connections", file.max_connections, defaults.max_connections, MAX_CONNECTIONS_LIMIT)?;
    let max_connections_per_address = count(
        "max_connections_per_address",
        file.max_connections_per_address,
        defaults.max_connections_per_address,
        MAX_CONNECTIONS_LIMIT,
    )?;
    let max_requests_per_connection = count(
        "max_requests_per_connection",
        file.max_requests_per_connection,
        defaults.max_requests_per_connection,
        MAX_REQUESTS_PER_CONNECTION_LIMIT,
    )?;
    Ok(ServerLimits {
        request_header_timeout: timeout(
            "request_header_timeout",
            file.request_header_timeout,
            defaults.request_header_timeout,
        )?,
        request_body_timeout: timeout(
            "request_body_timeout",
            file.request_body_timeout,
            defaults.request_body_timeout,
        )?,
        keep_alive_timeout: timeout("keep_alive_timeout", file.keep_alive_timeout, defaults.keep_alive_timeout)?,
        first_byte_timeout: timeout("first_byte_timeout", file.first_byte_timeout, defaults.first_byte_timeout)?,
        max_connections,
        max_connections_per_address,
        max_requests_per_connection,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    id: String,
    name: Option<String>,
    secret: Option<Secret>,
    secret_hash: Option<String>,
    #[serde(default)]
    public: bool,
    application_type: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    web_origins: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    scopes: Option<Vec<String>>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    token_exchange_audiences: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
    session: Option<ClientSessionOverride>,
    id_token_signed_response_alg: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password: Option<Secret>,
    password_hash: Option<String>,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: derived from the bound address at start-up.
    pub issuer: Option<String>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub signing_alg: SigningAlg,
    /// How long a rotated key is published before it signs.
    pub key_publish_ahead: Secs,
    /// How long a device authorization request lives (SPEC 15, RFC 8628
    /// `expires_in`).
    pub device_code_ttl: Secs,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see `net`).
    pub trusted_proxies: TrustedProxies,
    /// At most this many argon2 verifications at once.
    pub hashing_concurrency: usize,
    /// How long a sign-in or client authentication waits for a hashing slot.
    pub hashing_wait: Secs,
    /// Whether DPoP proofs at `/token` must carry a server nonce (RFC 9449 8).
    pub dpop_nonce_required: bool,
    /// Which store keeps the state (`store`, SPEC 6 and 12).
    pub store: StoreChoice,
    pub policy_layers: PolicyLayers,
    /// `[session.groups.NAME]` (SPEC 14): each group's tightening values.
    pub groups: BTreeMap<String, GroupPolicy>,
    /// The effective policy of the file and environment layers.
    pub policy: SessionPolicy,
    /// Connection limits (`[server]`).
    pub server: ServerLimits,
    /// Where push delivery of the revocation feed may connect: public
    /// addresses and `feed.allowed_private_networks`.
    pub feed_push_targets: OutboundTargets,
    /// Where back-channel logout tokens of clients created through the
    /// admin API may be sent: public addresses and
    /// `logout.allowed_private_networks` (the configuration file's own
    /// clients are the operator's word and reach any address).
    pub logout_targets: OutboundTargets,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    /// Warnings to log once logging is up (plain secrets in the file, ...).
    pub warnings: Vec<String>,
    /// `TENURE_BOOTSTRAP_ADMIN_*`: the first administrator, created at
    /// start-up when none exists (SPEC 9 "First run").
    pub bootstrap_admin: Option<BootstrapAdmin>,
}

/// The administrator that `TENURE_BOOTSTRAP_ADMIN_USERNAME` and
/// `TENURE_BOOTSTRAP_ADMIN_PASSWORD` (or `..._PASSWORD_FILE`) describe.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: Secret,
}

/// The non-session variables, beside the seven `TENURE_SESSION_*` ones.
const ENV_VARS: [&str; 29] = [
    "TENURE_CONFIG",
    "TENURE_ISSUER",
    "TENURE_LISTEN",
    "TENURE_DATA_DIR",
    "TENURE_KEYS_DIR",
    "TENURE_SIGNING_ALG",
    "TENURE_KEY_PUBLISH_AHEAD",
    "TENURE_DEVICE_CODE_TTL",
    "TENURE_LOG",
    "TENURE_LOG_FORMAT",
    "TENURE_SERVER_REQUEST_HEADER_TIMEOUT",
    "TENURE_SERVER_REQUEST_BODY_TIMEOUT",
    "TENURE_SERVER_KEEP_ALIVE_TIMEOUT",
    "TENURE_SERVER_FIRST_BYTE_TIMEOUT",
    "TENURE_SERVER_MAX_CONNECTIONS",
    "TENURE_SERVER_MAX_CONNECTIONS_PER_ADDRESS",
    "TENURE_SERVER_MAX_REQUESTS_PER_CONNECTION",
    "TENURE_TRUSTED_PROXIES",
    "TENURE_HASHING_CONCURRENCY",
    "TENURE_HASHING_WAIT",
    "TENURE_DPOP_NONCE",
    "TENURE_STORE",
    "TENURE_DATABASE_URL",
    "TENURE_DATABASE_POOL_SIZE",
    "TENURE_FEED_ALLOWED_PRIVATE_NETWORKS",
    "TENURE_LOGOUT_ALLOWED_PRIVATE_NETWORKS",
    "TENURE_BOOTSTRAP_ADMIN_USERNAME",
    "TENURE_BOOTSTRAP_ADMIN_PASSWORD",
    "TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE",
];

/// The variables of `tenure admin` (SPEC 11). The server accepts and ignores
/// them, so one environment can serve both the issuer and its command line.
pub const CLI_ENV_VARS: [&str; 5] = [
    "TENURE_URL",
    "TENURE_CLIENT_ID",
    "TENURE_CLIENT_SECRET",
    "TENURE_CLIENT_SECRET_FILE",
    "TENURE_ALLOW_INSECURE_HTTP",
];

fn known_env_vars() -> Vec<String> {
    ENV_VARS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(POLICY_KEYS.iter().map(|d| d.env_var.to_owned()))
        .chain(CLI_ENV_VARS.iter().map(|s| (*s).to_owned()))
        .collect()
}

impl Config {
    /// Load the configuration: `path` (or `TENURE_CONFIG`, or `./tenure.toml`
    /// when it exists), then the `TENURE_*` variables of `env`.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let explicit = path.map(Path::to_path_buf).or_else(|| env.get("TENURE_CONFIG").map(PathBuf::from));
        let file_path = match explicit {
            Some(p) => Some(p),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        let file = match &file_path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        Config::build(file, env)
    }

    /// Parse a config from TOML text and `env` (tests, `tenure config check`).
    pub fn from_toml(text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let file = toml::from_str::<FileConfig>(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::from("<inline>"), message: e.to_string() })?;
        Config::build(file, env)
    }

    fn build(file: FileConfig, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let known = known_env_vars();
        for var in env.keys().filter(|k| k.starts_with("TENURE_")) {
            if !known.iter().any(|k| k == var) {
                return Err(ConfigError::UnknownEnv { var: var.clone(), known: known.join(", ") });
            }
        }
        let pick = |var: &str, from_file: Option<String>| env.get(var).cloned().or(from_file);
        let mut warnings = Vec::new();
        let issuer = pick("TENURE_ISSUER", file.issuer).map(|s| parse_issuer(&s, &mut warnings)).transpose()?;
        let listen_raw = pick("TENURE_LISTEN", file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_raw
            .parse()
            .map_err(|_| invalid("listen", format!("{listen_raw:?} is not an address:port like {DEFAULT_LISTEN}")))?;
        let data_dir = env.get("TENURE_DATA_DIR").map(PathBuf::from).or(file.data_dir).unwrap_or_else(|| "data".into());
        let keys_dir = env.get("TENURE_KEYS_DIR").map(PathBuf::from).or(file.keys_dir).unwrap_or_else(|| "keys".into());
        let alg_raw = pick("TENURE_SIGNING_ALG", file.signing_alg).unwrap_or_else(|| "ES256".to_owned());
        let signing_alg = SigningAlg::parse(&alg_raw).ok_or_else(|| {
            invalid("signing_alg", format!("{alg_raw:?} is not supported; use ES256, EdDSA or RS256"))
        })?;
        let key_publish_ahead = parse_publish_ahead(env, file.key_publish_ahead)?;
        let device_code_ttl = parse_device_code_ttl(env, file.device_code_ttl)?;
        let log_filter = pick("TENURE_LOG", file.log).unwrap_or_else(|| "info".to_owned());
        let log_format = match pick("TENURE_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid("log_format", format!("{other:?} is not a log format; use text or json")));
            }
        };

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(invalid(
                "log",
                format!("{log_filter:?} is not a log filter (like \"info\" or \"tenure=debug,info\"): {e}"),
            ));
        }
        let trusted_proxies = match env.get("TENURE_TRUSTED_PROXIES") {
            Some(raw) => parse_trusted_proxies(
                "TENURE_TRUSTED_PROXIES",
                raw.split(',').map(str::trim).filter(|s| !s.is_empty()),
            )?,
            None => {
                parse_trusted_proxies("trusted_proxies", file.trusted_proxies.iter().flatten().map(String::as_str))?
            }
        };
        let hashing_concurrency = match env.get("TENURE_HASHING_CONCURRENCY") {
            Some(raw) => raw.trim().parse::<usize>().map_err(|_| ConfigError::Env {
                var: "TENURE_HASHING_CONCURRENCY".into(),
                message: format!("{raw:?} is not a whole number of concurrent hashes (1 to {MAX_HASHING_CONCURRENCY})"),
            })?,
            None => file.hashing_concurrency.unwrap_or_else(crate::secret::default_hashing_concurrency),
        };
        if !(1..=MAX_HASHING_CONCURRENCY).contains(&hashing_concurrency) {
            return Err(invalid(
                "hashing_concurrency",
                format!(
                    "{hashing_concurrency} is out of range: 1 to {MAX_HASHING_CONCURRENCY} (each argon2 run takes about 19 MiB)"
                ),
            ));
        }
        let hashing_wait = match pick("TENURE_HASHING_WAIT", file.hashing_wait) {
            None => Secs::new(crate::secret::DEFAULT_HASHING_WAIT.as_secs()),
            Some(raw) => raw.parse::<Secs>().map_err(|e| invalid("hashing_wait", e.to_string()))?,
        };
        if hashing_wait > Secs::minutes(1) {
            return Err(invalid("hashing_wait", format!("{hashing_wait} is too long: at most 1m")));
        }
        let from_env = env.contains_key("TENURE_DPOP_NONCE");
        let dpop_nonce_required = match pick("TENURE_DPOP_NONCE", file.dpop_nonce).as_deref().map(str::trim) {
            None | Some("required") => true,
            Some("off") => false,
            Some(other) => {
                let message = format!("{other:?} is not a nonce mode; use required or off");
                return Err(if from_env {
                    ConfigError::Env { var: "TENURE_DPOP_NONCE".into(), message }
                } else {
                    invalid("dpop_nonce", message)
                });
            }
        };
        let store = build_store_choice(env, file.store, file.database_url, file.database_pool_size)?;
        let (session_layer, groups) = split_session_table(file.session)?;
        let policy_layers =
            PolicyLayers { file: session_layer, env: env_policy_layer(env)?, admin: PolicyLayer::default() };
        let (policy, _) = policy_layers.resolve()?;
        // SPEC 14: a group may only tighten the global policy.
        for (name, g) in &groups {
            g.validate(name, &policy, u32::try_from(policy.max_sessions).unwrap_or(u32::MAX))?;
        }
        let server = build_server_limits(file.server, env)?;
        let feed_push_targets = outbound_targets(
            env,
            "TENURE_FEED_ALLOWED_PRIVATE_NETWORKS",
            "feed.allowed_private_networks",
            file.feed.allowed_private_networks.as_deref(),
        )?;
        let logout_targets = outbound_targets(
            env,
            "TENURE_LOGOUT_ALLOWED_PRIVATE_NETWORKS",
            "logout.allowed_private_networks",
            file.logout.allowed_private_networks.as_deref(),
        )?;

        let users = build_users(file.users, &mut warnings)?;
        for u in &users {
            if let Some(unknown) = u.groups.iter().find(|g| !groups.contains_key(*g)) {
                return Err(invalid(
                    format!("users[{}].groups", u.username),
                    format!(
                        "{unknown:?} is not a group: a user's groups must be declared as [session.groups.{unknown}] \
                         (known groups: {})",
                        if groups.is_empty() {
                            "none".to_owned()
                        } else {
                            groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ));
            }
        }
        let bootstrap_admin = bootstrap_admin(env)?;
        let clients = build_clients(file.clients, &policy, signing_alg, &mut warnings)?;
        let usernames: HashSet<&str> = users.iter().map(|u| u.username.as_str()).collect();
        if let Some(c) = clients.iter().find(|c| usernames.contains(c.id.as_str())) {
            return Err(invalid(
                format!("clients[{}].id", c.id),
                "equals a username; a client id must never collide with a user's subject (RFC 9700 4.15)",
            ));
        }
        Ok(Config {
            issuer,
            listen,
            data_dir,
            keys_dir,
            signing_alg,
            key_publish_ahead,
            device_code_ttl,
            log_filter,
            log_format,
            trusted_proxies,
            hashing_concurrency,
            hashing_wait,
            dpop_nonce_required,
            store,
            policy_layers,
            groups,
            policy,
            server,
            feed_push_targets,
            logout_targets,
            clients,
            users,
            warnings,
            bootstrap_admin,
        })
    }
}

// ---- The first administrator: `TENURE_BOOTSTRAP_ADMIN_*` (SPEC 9) ----

/// The bootstrap administrator of `env`, if any: the username and exactly
/// one of the password and the password file (its first line), both
/// following the rules of every user.
fn bootstrap_admin(env: &BTreeMap<String, String>) -> Result<Option<BootstrapAdmin>, ConfigError> {
    const USERNAME: &str = "TENURE_BOOTSTRAP_ADMIN_USERNAME";
    const PASSWORD: &str = "TENURE_BOOTSTRAP_ADMIN_PASSWORD";
    const PASSWORD_FILE: &str = "TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE";
    let env_error = |var: &str, message: String| ConfigError::Env { var: var.to_owned(), message };
    let (password, password_var) = match (env.get(PASSWORD), env.get(PASSWORD_FILE)) {
        (Some(_), Some(_)) => {
            return Err(env_error(PASSWORD_FILE, format!("set either {PASSWORD} or {PASSWORD_FILE}, not both")));
        }
        (Some(p), None) => (Some(Secret::new(p.clone())), PASSWORD),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| env_error(PASSWORD_FILE, format!("cannot read {path}: {e}")))?;
            let first = text.lines().next().unwrap_or_default().to_owned();
            (Some(Secret::new(first)), PASSWORD_FILE)
        }
        (None, None) => (None, PASSWORD),
    };
    let username = env.get(USERNAME).map(|u| u.trim().to_owned());
    match (username, password) {
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err(env_error(USERNAME, format!("is set without a password: set {PASSWORD} or {PASSWORD_FILE} too")))
        }
        (None, Some(_)) => Err(env_error(password_var, format!("is set without {USERNAME}"))),
        (Some(username), Some(password)) => {
            crate::user::check_username(&username).map_err(|m| env_error(USERNAME, m))?;
            let min = crate::user::MIN_PASSWORD_CHARS;
            if password.expose().chars().count() < min {
                return Err(env_error(password_var, format!("the password must be at least {min} characters")));
            }
            Ok(Some(BootstrapAdmin { username, password }))
        }
    }
}

// ---- Store selection: `store`, `database_url`, `database_pool_size` (SPEC 6, 12) ----

/// The default and the largest `database_pool_size`.
pub const DEFAULT_DATABASE_POOL_SIZE: usize = 16;
pub const MAX_DATABASE_POOL_SIZE: usize = 1024;

/// Which store keeps the issuer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded sled store under `data_dir` (the default).
    Sled,
    /// PostgreSQL, or a database that speaks its protocol, through a pool of
    /// at most `pool_size` connections.
    Postgres { url: DatabaseUrl, pool_size: usize },
}

fn build_store_choice(
    env: &BTreeMap<String, String>,
    file_store: Option<String>,
    file_url: Option<Secret>,
    file_pool_size: Option<usize>,
) -> Result<StoreChoice, ConfigError> {
    let (kind, kind_key) = match (env.get("TENURE_STORE"), file_store) {
        (Some(v), _) => (v.trim().to_owned(), "TENURE_STORE"),
        (None, Some(v)) => (v.trim().to_owned(), "store"),
        (None, None) => ("sled".to_owned(), "store"),
    };
    let (url, url_key) = match (env.get("TENURE_DATABASE_URL"), file_url) {
        (Some(v), _) => (Some(v.clone()), "TENURE_DATABASE_URL"),
        (None, Some(v)) => (Some(v.expose().to_owned()), "database_url"),
        (None, None) => (None, "database_url"),
    };
    let pool_size = match env.get("TENURE_DATABASE_POOL_SIZE") {
        Some(raw) => Some(raw.trim().parse::<usize>().map_err(|_| ConfigError::Env {
            var: "TENURE_DATABASE_POOL_SIZE".into(),
            message: format!("{raw:?} is not a whole number of connections (1 to {MAX_DATABASE_POOL_SIZE})"),
        })?),
        None => file_pool_size,
    };
    let in_key = |key: &str, message: String| -> ConfigError {
        if key.starts_with("TENURE_") {
            ConfigError::Env { var: key.to_owned(), message }
        } else {
            invalid(key, message)
        }
    };
    match kind.as_str() {
        "sled" => {
            if url.is_some() {
                return Err(in_key(
                    url_key,
                    "is set but the store is sled (the default); set store = \"postgres\" (TENURE_STORE=postgres) \
                     to use the database"
                        .into(),
                ));
            }
            if pool_size.is_some() {
                return Err(invalid("database_pool_size", "applies only with store = \"postgres\""));
            }
            Ok(StoreChoice::Sled)
        }
        "postgres" => {
            let raw = url.ok_or_else(|| {
                invalid(
                    "database_url",
                    "is required with store = \"postgres\" (or TENURE_DATABASE_URL), \
                     like postgres://tenure@db.example:5432/tenure?sslmode=require",
                )
            })?;
            let url = DatabaseUrl::parse(&raw).map_err(|m| in_key(url_key, m))?;
            let pool_size = pool_size.unwrap_or(DEFAULT_DATABASE_POOL_SIZE);
            if !(1..=MAX_DATABASE_POOL_SIZE).contains(&pool_size) {
                return Err(invalid(
                    "database_pool_size",
                    format!("must be between 1 and {MAX_DATABASE_POOL_SIZE}, not {pool_size}"),
                ));
            }
            Ok(StoreChoice::Postgres { url, pool_size })
        }
        other => Err(in_key(kind_key, format!("{other:?} is not a store; use sled or postgres"))),
    }
}

/// The most argon2 runs at once that `hashing_concurrency` allows.
pub const MAX_HASHING_CONCURRENCY: usize = 256;

/// `trusted_proxies` (file: a list; env: comma-separated), each an IP
/// address or a CIDR range.
fn parse_trusted_proxies<'a>(key: &str, items: impl Iterator<Item = &'a str>) -> Result<TrustedProxies, ConfigError> {
    parse_networks(key, items).map(TrustedProxies::new)
}

/// A list of IP addresses or CIDR ranges under `key` (file: a list; env:
/// comma-separated).
/// Where outbound requests may go: public addresses and the networks of
/// environment variable `var` (comma-separated), which replaces the file's
/// list at `key`.
fn outbound_targets(
    env: &BTreeMap<String, String>,
    var: &str,
    key: &str,
    file: Option<&[String]>,
) -> Result<OutboundTargets, ConfigError> {
    let allowed = match env.get(var) {
        Some(raw) => parse_networks(var, raw.split(',').map(str::trim).filter(|s| !s.is_empty()))?,
        None => parse_networks(key, file.unwrap_or_default().iter().map(String::as_str))?,
    };
    Ok(OutboundTargets::allowing(allowed))
}

fn parse_networks<'a>(key: &str, items: impl Iterator<Item = &'a str>) -> Result<Vec<IpNet>, ConfigError> {
    items.map(|item| item.parse::<IpNet>().map_err(|m| invalid(key, m))).collect()
}

/// OIDC Discovery 3 / RFC 8414 2: an https URL with no query or fragment
/// (http is accepted, with a warning unless the host is loopback).
fn parse_issuer(s: &str, warnings: &mut Vec<String>) -> Result<String, ConfigError> {
    let url = url::Url::parse(s).map_err(|e| invalid("issuer", format!("{s:?} must be an https URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("issuer", format!("{s:?} must be an https URL")));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        warnings
            .push(format!("issuer {s:?} uses http: tokens and cookies travel in clear; use https outside development"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("issuer", format!("{s:?} must not have a query or fragment (RFC 8414 2)")));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `key_publish_ahead` / `TENURE_KEY_PUBLISH_AHEAD`: a duration of at most
/// [`MAX_KEY_PUBLISH_AHEAD`].
fn parse_publish_ahead(env: &BTreeMap<String, String>, from_file: Option<String>) -> Result<Secs, ConfigError> {
    let (raw, bad): (String, Box<dyn Fn(String) -> ConfigError>) =
        match (env.get("TENURE_KEY_PUBLISH_AHEAD"), from_file) {
            (Some(v), _) => {
                (v.clone(), Box::new(|message| ConfigError::Env { var: "TENURE_KEY_PUBLISH_AHEAD".into(), message }))
            }
            (None, Some(v)) => (v, Box::new(|message| invalid("key_publish_ahead", message))),
            (None, None) => return Ok(DEFAULT_KEY_PUBLISH_AHEAD),
        };
    let value = raw.parse::<Secs>().map_err(|e| bad(e.to_string()))?;
    if value > MAX_KEY_PUBLISH_AHEAD {
        return Err(bad(format!(
            "{value} is longer than {MAX_KEY_PUBLISH_AHEAD}: a rotation would wait that long before it takes effect"
        )));
    }
    Ok(value)
}

/// `device_code_ttl` (or `TENURE_DEVICE_CODE_TTL`): more than 0 s, at most
/// [`MAX_DEVICE_CODE_TTL`].
fn parse_device_code_ttl(env: &BTreeMap<String, String>, from_file: Option<String>) -> Result<Secs, ConfigError> {
    let (raw, bad): (String, Box<dyn Fn(String) -> ConfigError>) = match (env.get("TENURE_DEVICE_CODE_TTL"), from_file)
    {
        (Some(v), _) => {
            (v.clone(), Box::new(|message| ConfigError::Env { var: "TENURE_DEVICE_CODE_TTL".into(), message }))
        }
        (None, Some(v)) => (v, Box::new(|message| invalid("device_code_ttl", message))),
        (None, None) => return Ok(DEFAULT_DEVICE_CODE_TTL),
    };
    let value = raw.parse::<Secs>().map_err(|e| bad(e.to_string()))?;
    if value.is_zero() || value > MAX_DEVICE_CODE_TTL {
        return Err(bad(format!(
            "must be more than 0s and at most {MAX_DEVICE_CODE_TTL} (a user code must not live long), not {value}"
        )));
    }
    Ok(value)
}

fn env_policy_layer(env: &BTreeMap<String, String>) -> Result<PolicyLayer, ConfigError> {
    let mut layer = PolicyLayer::default();
    for def in POLICY_KEYS {
        let Some(raw) = env.get(def.env_var) else { continue };
        let bad = |message: String| ConfigError::Env { var: def.env_var.to_owned(), message };
        let value = def.parse(raw).map_err(|e| bad(e.to_string()))?;
        def.set(&mut layer, Some(value)).map_err(|_| bad(format!("{raw:?}: `off` is only for the idle timeouts")))?;
    }
    Ok(layer)
}

/// A secret given as a hash, or in plain (hashed now, with a warning).
fn hash_or_plain(
    key: &str,
    plain: Option<Secret>,
    hash: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<PasswordHashString>, ConfigError> {
    match (plain, hash) {
        (Some(_), Some(_)) => Err(invalid(key, "give either the plain value or its hash, not both")),
        (None, Some(h)) => {
            PasswordHashString::parse(&h).map(Some).map_err(|e| invalid(format!("{key}_hash"), e.to_string()))
        }
        (Some(p), None) => {
            warnings.push(format!(
                "{key} is given in plain text in the config; store an argon2id hash instead (`tenure hash-secret`)"
            ));
            PasswordHashString::hash(&p).map(Some).map_err(|e| invalid(key, e.to_string()))
        }
        (None, None) => Ok(None),
    }
}

fn parse_permissions(key: &str, raw: &[String]) -> Result<BTreeSet<Permission>, ConfigError> {
    raw.iter()
        .map(|p| {
            Permission::parse(p)
                .ok_or_else(|| invalid(key, format!("{p:?} is not a permission; known: system:administer, users:edit")))
        })
        .collect()
}

fn build_users(entries: Vec<UserEntry>, warnings: &mut Vec<String>) -> Result<Vec<User>, ConfigError> {
    let mut seen = HashSet::new();
    let mut users = Vec::with_capacity(entries.len());
    for (i, u) in entries.into_iter().enumerate() {
        let key = if u.username.is_empty() { format!("users[{i}]") } else { format!("users[{}]", u.username) };
        crate::user::check_username(&u.username).map_err(|m| invalid(format!("{key}.username"), m))?;
        if !seen.insert(u.username.clone()) {
            return Err(invalid(format!("{key}.username"), "is declared twice"));
        }
        let password_hash = hash_or_plain(&format!("{key}.password"), u.password, u.password_hash, warnings)?
            .ok_or_else(|| invalid(format!("{key}.password"), "is required (or password_hash)"))?;
        let permissions = parse_permissions(&format!("{key}.permissions"), &u.permissions)?;
        let groups = crate::user::normalise_groups(&u.groups).map_err(|m| invalid(format!("{key}.groups"), m))?;
        users.push(User {
            username: u.username,
            name: u.name,
            email: u.email,
            password_hash,
            permissions,
            disabled: false,
            created_at: None,
            groups,
        });
    }
    Ok(users)
}

/// Split the `[session]` table into the policy keys (one layer) and the
/// groups of `[session.groups.NAME]`, each name checked.
fn split_session_table(mut table: toml::Table) -> Result<(PolicyLayer, BTreeMap<String, GroupPolicy>), ConfigError> {
    let groups_value = table.remove("groups");
    let layer: PolicyLayer = toml::Value::Table(table.clone()).try_into().map_err(|e: toml::de::Error| {
        // A value's error does not say its key: name the first key that
        // fails alone (SPEC 3: the message names the key and the rule).
        let culprit = table.iter().find_map(|(key, value)| {
            let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
            toml::Value::Table(alone).try_into::<PolicyLayer>().err().map(|e| (key.clone(), e))
        });
        match culprit {
            Some((key, e)) => invalid(format!("session.{key}"), e.message().to_owned()),
            None => invalid("session", e.message().to_owned()),
        }
    })?;
    let mut groups = BTreeMap::new();
    match groups_value {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (name, body) in t {
                crate::policy::check_group_name(&name).map_err(|m| invalid(format!("session.groups.{name}"), m))?;
                let g: GroupPolicy = body
                    .try_into()
                    .map_err(|e: toml::de::Error| invalid(format!("session.groups.{name}"), e.message().to_owned()))?;
                groups.insert(name, g);
            }
        }
        Some(_) => return Err(invalid("session.groups", "must be a table of groups: [session.groups.NAME]")),
    }
    Ok((layer, groups))
}

fn build_clients(
    entries: Vec<ClientEntry>,
    policy: &SessionPolicy,
    signing_alg: SigningAlg,
    warnings: &mut Vec<String>,
) -> Result<Vec<Client>, ConfigError> {
    let mut seen = HashSet::new();
    let mut clients = Vec::with_capacity(entries.len());
    for (i, c) in entries.into_iter().enumerate() {
        let key = if c.id.is_empty() { format!("clients[{i}]") } else { format!("clients[{}]", c.id) };
        if !seen.insert(c.id.clone()) {
            return Err(invalid(format!("{key}.id"), "is declared twice"));
        }
        if c.id == crate::oauth::console_client::CLIENT_ID {
            // SPEC 9: the console's client is built in.
            return Err(invalid(
                format!("{key}.id"),
                "\"console\" is reserved for the built-in web console client; choose another id",
            ));
        }
        let secret = hash_or_plain(&format!("{key}.secret"), c.secret, c.secret_hash, warnings)?;
        if let Some(o) = &c.session {
            o.validate(&c.id, policy)?;
        }
        let spec = ClientSpec {
            id: c.id,
            name: c.name,
            public: c.public,
            redirect_uris: c.redirect_uris,
            web_origins: c.web_origins,
            grant_types: c.grant_types,
            scopes: c.scopes,
            backchannel_logout_uri: c.backchannel_logout_uri,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            application_type: c.application_type,
            token_exchange_audiences: c.token_exchange_audiences,
            permissions: c.permissions,
            session: c.session,
            id_token_signed_response_alg: c.id_token_signed_response_alg,
        };
        let client =
            spec.build(secret, policy, signing_alg).map_err(|e| invalid(format!("{key}.{}", e.field), e.message))?;
        clients.push(client);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Secs;
    use crate::oauth::client::RedirectUri;
    use crate::policy::IdleTimeout;

    fn no_env() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn err(text: &str) -> String {
        Config::from_toml(text, &no_env()).expect_err("must be refused").to_string()
    }

    #[test]
    fn device_code_ttl_is_a_short_duration() {
        assert_eq!(Config::from_toml("", &no_env()).expect("valid").device_code_ttl, Secs::minutes(10));
        let c = Config::from_toml("device_code_ttl = \"5m\"", &no_env()).expect("valid");
        assert_eq!(c.device_code_ttl, Secs::minutes(5));
        let c =
            Config::from_toml("device_code_ttl = \"5m\"", &env(&[("TENURE_DEVICE_CODE_TTL", "90")])).expect("valid");
        assert_eq!(c.device_code_ttl, Secs::new(90), "the environment wins");
        assert!(err("device_code_ttl = \"soon\"").starts_with("device_code_ttl: \"soon\" is not a duration"));
        assert_eq!(
            err("device_code_ttl = \"2h\""),
            "device_code_ttl: must be more than 0s and at most 1h (a user code must not live long), not 2h"
        );
        assert!(err("device_code_ttl = \"0\"").starts_with("device_code_ttl: must be more than 0s"));
        let e = Config::from_toml("", &env(&[("TENURE_DEVICE_CODE_TTL", "0")])).expect_err("refused").to_string();
        assert!(e.starts_with("environment variable TENURE_DEVICE_CODE_TTL: must be more than 0s"), "{e}");
    }

    #[test]
    fn nothing_configured_gives_the_spec_defaults() {
        let c = Config::from_toml("", &no_env()).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, None, "derived from the bound address: http://127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.keys_dir, PathBuf::from("keys"));
        assert_eq!(c.signing_alg, SigningAlg::ES256);
        assert_eq!(c.policy, SessionPolicy::default());
        assert!(c.clients.is_empty() && c.users.is_empty());
    }

    #[test]
    fn the_spec_example_loads() {
        let text = include_str!("../tenure.example.toml");
        let c = Config::from_toml(text, &no_env()).expect("the documented example is valid");
        assert_eq!(c.clients.len(), 4);
        assert_eq!(c.users.len(), 2);
        assert!(c.warnings.iter().any(|w| w.contains("clients[web].secret is given in plain text")));
        let spa = c.clients.iter().find(|c| c.id == "spa").expect("spa");
        assert!(spa.is_public());
        assert_eq!(spa.session.as_ref().and_then(|s| s.max_lifetime), Some(Secs::hours(1)));
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::from_toml(
            "listen = \"127.0.0.1:1\"\n[session]\nidle_timeout = \"20m\"",
            &env(&[
                ("TENURE_LISTEN", "127.0.0.1:9999"),
                ("TENURE_SESSION_IDLE_TIMEOUT", "10m"),
                ("TENURE_SIGNING_ALG", "EdDSA"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.policy.idle_timeout, IdleTimeout::After(Secs::minutes(10)));
        assert_eq!(c.signing_alg, SigningAlg::EdDSA);
    }

    /// Every row of the policy table is taken by the config file and the
    /// environment, each to the same layer (the admin API's half is
    /// `http::settings`'s test of the same name).
    #[test]
    fn every_policy_key_is_accepted_by_file_env_and_admin_api() {
        use crate::policy::POLICY_KEYS;
        // Valid all at once: idle timeouts off, every duration the same hour.
        let value = |d: &crate::policy::PolicyKeyDef| d.example();
        let mut expected = PolicyLayer::default();
        let mut toml_text = String::from("[session]\n");
        let mut vars = BTreeMap::new();
        for d in POLICY_KEYS {
            let v = value(d);
            d.set(&mut expected, Some(v)).expect("a value of the key's kind");
            toml_text.push_str(&format!("{} = \"{v}\"\n", d.name));
            vars.insert(d.env_var.to_owned(), v.to_string());
        }
        assert!(POLICY_KEYS.iter().all(|d| d.get(&expected).is_some()), "every key set: {expected:?}");
        let file = Config::from_toml(&toml_text, &no_env()).expect("the file takes every key");
        assert_eq!(file.policy_layers.file, expected, "config file");
        let env = Config::from_toml("", &vars).expect("the environment takes every key");
        assert_eq!(env.policy_layers.env, expected, "environment");
        assert_eq!(env.policy, file.policy);
    }

    #[test]
    fn the_admin_cli_variables_are_accepted_and_ignored() {
        let c = Config::from_toml(
            "",
            &env(&[
                ("TENURE_URL", "http://127.0.0.1:8080"),
                ("TENURE_CLIENT_ID", "tenure-cli"),
                ("TENURE_CLIENT_SECRET", "s3cret"),
                ("TENURE_CLIENT_SECRET_FILE", "/run/secrets/tenure-cli"),
                ("TENURE_ALLOW_INSECURE_HTTP", "0"),
            ]),
        )
        .expect("the server accepts the CLI's variables");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080", "and they change nothing");
        let e = Config::from_toml("", &env(&[("TENURE_CLIENT_SECRETS", "x")])).expect_err("typo").to_string();
        assert!(e.starts_with("unknown environment variable TENURE_CLIENT_SECRETS"), "{e}");
        assert!(
            e.ends_with(
                "TENURE_URL, TENURE_CLIENT_ID, TENURE_CLIENT_SECRET, TENURE_CLIENT_SECRET_FILE, TENURE_ALLOW_INSECURE_HTTP"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_bootstrap_administrator_comes_from_the_environment_and_follows_the_user_rules() {
        let c = Config::from_toml(
            "",
            &env(&[("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "long enough")]),
        )
        .expect("a username and a password");
        let admin = c.bootstrap_admin.clone().expect("an administrator to create");
        assert_eq!((admin.username.as_str(), admin.password.expose()), ("admin", "long enough"));
        assert!(!format!("{c:?}").contains("long enough"), "the password never reaches Debug");
        assert!(Config::from_toml("", &no_env()).expect("defaults").bootstrap_admin.is_none(), "nothing by default");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("password");
        std::fs::write(&file, "from the file\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let c = Config::from_toml(
            "",
            &env(&[("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE", &path)]),
        )
        .expect("a password file");
        assert_eq!(c.bootstrap_admin.expect("set").password.expose(), "from the file", "its first line");

        let refused = |vars: &[(&str, &str)]| Config::from_toml("", &env(vars)).expect_err("refused").to_string();
        let e = refused(&[("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin")]);
        assert!(e.contains("TENURE_BOOTSTRAP_ADMIN_USERNAME: is set without a password"), "{e}");
        let e = refused(&[("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "long enough")]);
        assert!(e.contains("TENURE_BOOTSTRAP_ADMIN_PASSWORD: is set without TENURE_BOOTSTRAP_ADMIN_USERNAME"), "{e}");
        let e = refused(&[("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "short")]);
        assert!(e.contains("TENURE_BOOTSTRAP_ADMIN_PASSWORD: the password must be at least 8 characters"), "{e}");
        let e = refused(&[
            ("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin"),
            ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "long enough"),
            ("TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE", &path),
        ]);
        assert!(e.contains("not both"), "{e}");
        let e =
            refused(&[("TENURE_BOOTSTRAP_ADMIN_USERNAME", "a/b"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "long enough")]);
        assert!(e.starts_with("environment variable TENURE_BOOTSTRAP_ADMIN_USERNAME"), "{e}");
        let e = refused(&[
            ("TENURE_BOOTSTRAP_ADMIN_USERNAME", "admin"),
            ("TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE", "/nonexistent/tenure-password"),
        ]);
        assert!(e.contains("TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE: cannot read /nonexistent/tenure-password"), "{e}");
    }

    #[test]
    fn unknown_keys_and_variables_are_errors() {
        assert!(err("idle_timeout = \"1h\"").contains("unknown field `idle_timeout`"));
        assert!(err("[session]\nidle_timout = \"1h\"").contains("unknown field `idle_timout`"));
        let e = Config::from_toml("", &env(&[("TENURE_SESSION_IDLE_TIMOUT", "1h")])).expect_err("typo").to_string();
        assert!(e.starts_with("unknown environment variable TENURE_SESSION_IDLE_TIMOUT"), "{e}");
        assert!(e.contains("TENURE_SESSION_IDLE_TIMEOUT"), "lists the known ones: {e}");
    }

    #[test]
    fn groups_are_read_checked_and_named_by_users() {
        let text = "[session.groups.admins]\nidle_timeout = \"10m\"\n[[users]]\nusername = \"a\"\npassword = \"pw\"\ngroups = [\"admins\", \"admins\"]";
        let c = Config::from_toml(text, &no_env()).expect("valid");
        assert_eq!(c.groups["admins"].idle_timeout, Some(Secs::minutes(10)));
        assert_eq!(c.users[0].groups, ["admins"], "repeats dropped");
        assert_eq!(
            err("[session.groups.admins]\nmax_lifetime = \"13h\""),
            "session.groups.admins.max_lifetime (13h) must not exceed session.max_lifetime (12h)"
        );
        assert!(
            err("[[users]]\nusername = \"a\"\npassword = \"pw\"\ngroups = [\"x\"]")
                .starts_with("users[a].groups: \"x\" is not a group"),
        );
        assert!(err("[session.groups.admins]\nidle_timout = 1").contains("unknown field `idle_timout`"));
        assert!(err("[session.groups.\"a b\"]\nidle_timeout = 1").contains("may hold only letters"));
        let e = err("[session]\nidle_timeout = \"20m\"\n[session.groups.ops]\nidle_timeout = \"25m\"");
        assert_eq!(e, "session.groups.ops.idle_timeout (25m) must not exceed session.idle_timeout (20m)");
    }

    #[test]
    fn bad_values_name_the_key() {
        assert_eq!(
            Config::from_toml("", &env(&[("TENURE_SESSION_MAX_LIFETIME", "12 hours")])).expect_err("bad").to_string(),
            "environment variable TENURE_SESSION_MAX_LIFETIME: \"12 hours\" is not a duration: unknown unit (use whole seconds like 1800, or units like 30m, 12h, 7d, 1d12h)"
        );
        assert_eq!(
            Config::from_toml(
                "",
                &env(&[("TENURE_SESSION_IDLE_TIMEOUT", "2h"), ("TENURE_SESSION_MAX_LIFETIME", "1h")])
            )
            .expect_err("bad")
            .to_string(),
            "session.idle_timeout (2h) must not exceed session.max_lifetime (1h)"
        );
        assert!(err("signing_alg = \"HS256\"").starts_with("signing_alg: \"HS256\" is not supported"));
        assert!(err("listen = \"localhost\"").starts_with("listen: "));
        assert!(err("issuer = \"ftp://x\"").starts_with("issuer: "));
        assert!(err("log_format = \"xml\"").starts_with("log_format: "));
        assert!(err("log = \"tenure=[\"").starts_with("log: \"tenure=[\" is not a log filter"));
        let c = Config::from_toml("issuer = \"http://login.example.com\"", &no_env()).expect("accepted");
        assert!(c.warnings.iter().any(|w| w.contains("uses http")));
        assert!(Config::from_toml("issuer = \"http://127.0.0.1:8080\"", &no_env()).expect("ok").warnings.is_empty());
    }

    #[test]
    fn key_publish_ahead_defaults_to_ten_minutes_and_is_bounded() {
        assert_eq!(Config::from_toml("", &no_env()).expect("valid").key_publish_ahead, Secs::minutes(10));
        assert_eq!(Config::from_toml("", &no_env()).expect("valid").device_code_ttl, Secs::minutes(10));
        let c = Config::from_toml("key_publish_ahead = \"2m\"", &no_env()).expect("valid");
        assert_eq!(c.key_publish_ahead, Secs::minutes(2));
        let c =
            Config::from_toml("key_publish_ahead = \"2m\"", &env(&[("TENURE_KEY_PUBLISH_AHEAD", "0")])).expect("valid");
        assert_eq!(c.key_publish_ahead, Secs::ZERO, "the environment wins");
        assert!(err("key_publish_ahead = \"soon\"").starts_with("key_publish_ahead: \"soon\" is not a duration"));
        assert_eq!(
            err("key_publish_ahead = \"2d\""),
            "key_publish_ahead: 2d is longer than 1d: a rotation would wait that long before it takes effect"
        );
        let e = Config::from_toml("", &env(&[("TENURE_KEY_PUBLISH_AHEAD", "2d")])).expect_err("bad").to_string();
        assert!(e.starts_with("environment variable TENURE_KEY_PUBLISH_AHEAD: 2d is longer than 1d"), "{e}");
    }

    #[test]
    fn id_token_signed_response_alg_is_the_default_or_rs256() {
        let client = |alg: &str| {
            format!(
                "[[clients]]\nid = \"web\"\nsecret = \"s\"\nredirect_uris = [\"https://rp.example/cb\"]\n\
                 grant_types = [\"authorization_code\"]\nid_token_signed_response_alg = \"{alg}\"\n"
            )
        };
        let c = Config::from_toml(&client("RS256"), &no_env()).expect("valid");
        assert_eq!(c.clients[0].id_token_signed_response_alg, Some(SigningAlg::RS256));
        let c = Config::from_toml(&client("ES256"), &no_env()).expect("valid");
        assert_eq!(c.clients[0].id_token_signed_response_alg, Some(SigningAlg::ES256));
        assert_eq!(
            err(&client("EdDSA")),
            "clients[web].id_token_signed_response_alg: \"EdDSA\" is not offered for ID tokens; use ES256 (signing_alg) or RS256"
        );
        assert!(err(&client("HS256")).starts_with("clients[web].id_token_signed_response_alg: \"HS256\""));
        let c = Config::from_toml(&format!("signing_alg = \"EdDSA\"\n{}", client("EdDSA")), &no_env()).expect("valid");
        assert_eq!(c.clients[0].id_token_signed_response_alg, Some(SigningAlg::EdDSA));
        assert_eq!(
            Config::from_toml(&client("RS256").replace("id_token_signed_response_alg = \"RS256\"\n", ""), &no_env())
                .expect("valid")
                .clients[0]
                .id_token_signed_response_alg,
            None
        );
    }

    #[test]
    fn server_limits_come_from_file_and_environment() {
        let c = Config::from_toml("", &no_env()).expect("valid");
        assert_eq!(c.server, ServerLimits::default());
        let c = Config::from_toml(
            "[server]\nrequest_header_timeout = \"5s\"\nkeep_alive_timeout = \"2m\"\nmax_connections = 64",
            &env(&[("TENURE_SERVER_KEEP_ALIVE_TIMEOUT", "30"), ("TENURE_SERVER_REQUEST_BODY_TIMEOUT", "1m")]),
        )
        .expect("valid");
        assert_eq!(c.server.request_header_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.server.keep_alive_timeout, std::time::Duration::from_secs(30), "env wins");
        assert_eq!(c.server.request_body_timeout, std::time::Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 64);
        assert_eq!(
            err("[server]\nrequest_header_timeout = \"0s\""),
            "server.request_header_timeout: must be more than 0s and at most 1h, not 0s"
        );
        assert_eq!(
            err("[server]\nmax_connections = 0"),
            "server.max_connections: must be between 1 and 1000000, not 0"
        );
        assert!(err("[server]\nidle_timeout = \"1m\"").contains("unknown field `idle_timeout`"));
        let c = Config::from_toml(
            "[server]\nfirst_byte_timeout = \"2s\"\nmax_connections_per_address = 8\nmax_requests_per_connection = 100",
            &env(&[("TENURE_SERVER_MAX_REQUESTS_PER_CONNECTION", "50")]),
        )
        .expect("valid");
        assert_eq!(c.server.first_byte_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.server.max_connections_per_address, 8);
        assert_eq!(c.server.max_requests_per_connection, 50, "env wins");
        assert_eq!(
            err("[server]\nmax_connections_per_address = 0"),
            "server.max_connections_per_address: must be between 1 and 1000000, not 0"
        );
        assert_eq!(
            err("[server]\nmax_requests_per_connection = 0"),
            "server.max_requests_per_connection: must be between 1 and 1000000000, not 0"
        );
        let e = Config::from_toml("", &env(&[("TENURE_SERVER_FIRST_BYTE_TIMEOUT", "0")])).expect_err("bad");
        assert_eq!(e.to_string(), "server.first_byte_timeout: must be more than 0s and at most 1h, not 0s");
        let e = Config::from_toml("", &env(&[("TENURE_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "-1")])).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "environment variable TENURE_SERVER_MAX_CONNECTIONS_PER_ADDRESS: \"-1\" is not a whole number"
        );
        let e = Config::from_toml("", &env(&[("TENURE_SERVER_MAX_CONNECTIONS", "many")])).expect_err("bad");
        assert_eq!(e.to_string(), "environment variable TENURE_SERVER_MAX_CONNECTIONS: \"many\" is not a whole number");
        let e = Config::from_toml("", &env(&[("TENURE_SERVER_KEEP_ALIVE_TIMEOUT", "2d")])).expect_err("bad");
        assert_eq!(e.to_string(), "server.keep_alive_timeout: must be more than 0s and at most 1h, not 2d");
    }

    #[test]
    fn trusted_proxies_and_hashing_limits() {
        let c = Config::from_toml("", &no_env()).expect("valid");
        assert!(c.trusted_proxies.is_empty(), "no proxy is trusted by default");
        assert!(c.hashing_concurrency >= 1);
        assert_eq!(c.hashing_wait, Secs::new(2));
        let c = Config::from_toml(
            "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\nhashing_concurrency = 3\nhashing_wait = \"0\"",
            &no_env(),
        )
        .expect("valid");
        assert!(c.trusted_proxies.trusts("10.2.3.4".parse().expect("ip")));
        assert!(c.trusted_proxies.trusts("127.0.0.1".parse().expect("ip")));
        assert_eq!((c.hashing_concurrency, c.hashing_wait), (3, Secs::ZERO));
        let c = Config::from_toml(
            "trusted_proxies = [\"10.0.0.0/8\"]",
            &env(&[("TENURE_TRUSTED_PROXIES", "192.168.0.0/16, ::1"), ("TENURE_HASHING_CONCURRENCY", "2")]),
        )
        .expect("valid");
        assert!(!c.trusted_proxies.trusts("10.2.3.4".parse().expect("ip")), "the environment replaces the file");
        assert!(c.trusted_proxies.trusts("::1".parse().expect("ip")));
        assert_eq!(c.hashing_concurrency, 2);
        assert_eq!(
            err("trusted_proxies = [\"proxy.internal\"]"),
            "trusted_proxies: \"proxy.internal\" is not an IP address or CIDR range (like 10.0.0.1, 10.0.0.0/8 or fd00::/8)"
        );
        let e = Config::from_toml("", &env(&[("TENURE_TRUSTED_PROXIES", "10.0.0.0/40")])).expect_err("bad").to_string();
        assert!(e.starts_with("TENURE_TRUSTED_PROXIES: \"10.0.0.0/40\" is not"), "{e}");
        assert!(err("hashing_concurrency = 0").starts_with("hashing_concurrency: 0 is out of range: 1 to 256"));
        let e = Config::from_toml("", &env(&[("TENURE_HASHING_CONCURRENCY", "many")])).expect_err("bad").to_string();
        assert!(
            e.starts_with("environment variable TENURE_HASHING_CONCURRENCY: \"many\" is not a whole number"),
            "{e}"
        );
        assert!(err("hashing_wait = \"2h\"").starts_with("hashing_wait: 2h is too long: at most 1m"));
        assert!(err("hashing_wait = \"soon\"").starts_with("hashing_wait: \"soon\" is not a duration"));
    }

    #[test]
    fn admin_clients_back_channel_logout_reaches_only_public_addresses_unless_networks_are_allowed() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let c = Config::from_toml("", &no_env()).expect("valid");
        assert!(c.logout_targets.check(ip("127.0.0.1")).is_err() && c.logout_targets.check(ip("10.0.0.1")).is_err());
        let c = Config::from_toml("[logout]\nallowed_private_networks = [\"10.1.0.0/16\"]", &no_env()).expect("valid");
        assert!(c.logout_targets.check(ip("10.1.2.3")).is_ok() && c.logout_targets.check(ip("10.2.0.1")).is_err());
        assert!(c.feed_push_targets.check(ip("10.1.2.3")).is_err(), "the feed's rule is its own");
        let c = Config::from_toml("", &env(&[("TENURE_LOGOUT_ALLOWED_PRIVATE_NETWORKS", "127.0.0.1")])).expect("valid");
        assert!(c.logout_targets.check(ip("127.0.0.1")).is_ok());
        assert_eq!(
            err("[logout]\nallowed_private_networks = [\"intranet\"]"),
            "logout.allowed_private_networks: \"intranet\" is not an IP address or CIDR range (like 10.0.0.1, 10.0.0.0/8 or fd00::/8)"
        );
    }

    #[test]
    fn feed_push_reaches_only_public_addresses_unless_networks_are_allowed() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let c = Config::from_toml("", &no_env()).expect("valid");
        assert!(c.feed_push_targets.allowed().is_empty(), "no private network by default");
        assert!(c.feed_push_targets.check(ip("127.0.0.1")).is_err());
        let c = Config::from_toml("[feed]\nallowed_private_networks = [\"10.1.0.0/16\", \"::1\"]", &no_env())
            .expect("valid");
        assert!(c.feed_push_targets.check(ip("10.1.2.3")).is_ok() && c.feed_push_targets.check(ip("::1")).is_ok());
        assert!(c.feed_push_targets.check(ip("10.2.0.1")).is_err());
        let c = Config::from_toml(
            "[feed]\nallowed_private_networks = [\"10.1.0.0/16\"]",
            &env(&[("TENURE_FEED_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8, 192.168.0.0/16")]),
        )
        .expect("valid");
        assert!(c.feed_push_targets.check(ip("10.1.2.3")).is_err(), "the environment replaces the file");
        assert!(c.feed_push_targets.check(ip("192.168.7.7")).is_ok());
        assert_eq!(
            err("[feed]\nallowed_private_networks = [\"lab.internal\"]"),
            "feed.allowed_private_networks: \"lab.internal\" is not an IP address or CIDR range (like 10.0.0.1, 10.0.0.0/8 or fd00::/8)"
        );
        let e = Config::from_toml("", &env(&[("TENURE_FEED_ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/99")]))
            .expect_err("bad")
            .to_string();
        assert!(e.starts_with("TENURE_FEED_ALLOWED_PRIVATE_NETWORKS: \"10.0.0.0/99\" is not"), "{e}");
        assert!(err("[feed]\nallow_everything = true").contains("unknown field `allow_everything`"));
    }

    #[test]
    fn dpop_nonces_are_required_unless_turned_off() {
        assert!(Config::from_toml("", &no_env()).expect("valid").dpop_nonce_required);
        assert!(!Config::from_toml("dpop_nonce = \"off\"", &no_env()).expect("valid").dpop_nonce_required);
        let c = Config::from_toml("dpop_nonce = \"off\"", &env(&[("TENURE_DPOP_NONCE", "required")])).expect("valid");
        assert!(c.dpop_nonce_required, "the environment wins");
        assert_eq!(
            err("dpop_nonce = \"sometimes\""),
            "dpop_nonce: \"sometimes\" is not a nonce mode; use required or off"
        );
        let e = Config::from_toml("", &env(&[("TENURE_DPOP_NONCE", "no")])).expect_err("bad").to_string();
        assert_eq!(e, "environment variable TENURE_DPOP_NONCE: \"no\" is not a nonce mode; use required or off");
    }

    // ---- Store selection (PostgreSQL store, SPEC 12) ----

    #[test]
    fn the_store_is_sled_unless_postgres_is_chosen_with_a_url() {
        assert_eq!(Config::from_toml("", &no_env()).expect("valid").store, StoreChoice::Sled);
        let c = Config::from_toml(
            "store = \"postgres\"\ndatabase_url = \"postgres://tenure:pw@db.example:5433/tenure?sslmode=require\"",
            &no_env(),
        )
        .expect("valid");
        let StoreChoice::Postgres { url, pool_size } = &c.store else { panic!("{:?}", c.store) };
        assert_eq!(*pool_size, DEFAULT_DATABASE_POOL_SIZE);
        assert!(url.requires_tls());
        assert_eq!(url.redacted(), "tenure@db.example:5433/tenure");
        let from_env = Config::from_toml(
            "",
            &env(&[
                ("TENURE_STORE", "postgres"),
                ("TENURE_DATABASE_URL", "host=db.example user=tenure dbname=issuer"),
                ("TENURE_DATABASE_POOL_SIZE", "40"),
            ]),
        )
        .expect("valid");
        let StoreChoice::Postgres { url, pool_size } = &from_env.store else { panic!("{:?}", from_env.store) };
        assert_eq!((url.redacted().as_str(), *pool_size), ("tenure@db.example:5432/issuer", 40));
        assert!(!url.requires_tls(), "TLS only when the URL asks for it");
    }

    #[test]
    fn the_database_password_never_prints() {
        let c = Config::from_toml(
            "store = \"postgres\"\ndatabase_url = \"postgres://tenure:hunter2-secret@db.example/tenure\"",
            &no_env(),
        )
        .expect("valid");
        let shown = format!(
            "{c:?} {}",
            match &c.store {
                StoreChoice::Postgres { url, .. } => url.to_string(),
                StoreChoice::Sled => String::new(),
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("tenure@db.example:5432/tenure"), "{shown}");
        // Nor in a refusal of the URL.
        let e = Config::from_toml(
            "",
            &env(&[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", "postgres://u:hunter2@h:notaport/db")]),
        )
        .expect_err("bad port")
        .to_string();
        assert!(
            e.starts_with("environment variable TENURE_DATABASE_URL: is not a PostgreSQL connection string"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn store_settings_are_checked() {
        assert_eq!(err("store = \"mysql\""), "store: \"mysql\" is not a store; use sled or postgres");
        assert!(err("store = \"postgres\"").starts_with("database_url: is required with store = \"postgres\""));
        assert!(
            err("database_url = \"postgres://h/db\"").starts_with("database_url: is set but the store is sled"),
            "a URL that would silently do nothing is refused"
        );
        assert_eq!(
            err("store = \"postgres\"\ndatabase_url = \"postgres://h/db\"\ndatabase_pool_size = 0"),
            "database_pool_size: must be between 1 and 1024, not 0"
        );
        assert!(
            err("store = \"postgres\"\ndatabase_url = \"postgres://h/db?sslmode=verify-full\"")
                .starts_with("database_url: sslmode=verify-full is not supported: use sslmode=require")
        );
        let e = Config::from_toml("", &env(&[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", " ")]))
            .expect_err("empty")
            .to_string();
        assert!(e.starts_with("environment variable TENURE_DATABASE_URL: is empty"), "{e}");
    }

    #[test]
    fn clients_are_checked() {
        let base = "[[clients]]\nid = \"c\"\nsecret = \"s\"\ngrant_types = [\"client_credentials\"]\n";
        assert!(Config::from_toml(base, &no_env()).is_ok());
        assert!(
            err("[[clients]]\nid = \"c\"\ngrant_types = [\"client_credentials\"]")
                .contains("clients[c].secret: a confidential client needs")
        );
        assert!(
            err("[[clients]]\nid = \"c\"\npublic = true\nsecret = \"s\"\ngrant_types = [\"refresh_token\"]")
                .contains("a public client has no secret")
        );
        assert!(
            err("[[clients]]\nid = \"c\"\npublic = true\ngrant_types = [\"client_credentials\"]")
                .contains("needs client authentication")
        );
        assert!(
            err("[[clients]]\nid = \"c\"\nsecret = \"s\"\ngrant_types = [\"password\"]")
                .contains("clients[c].grant_types: \"password\" is not supported")
        );
        assert!(
            err("[[clients]]\nid = \"c\"\nsecret = \"s\"\ngrant_types = [\"authorization_code\"]")
                .contains("needs at least one redirect URI")
        );
        assert!(err(&format!("{base}redirect_uris = [\"https://x/cb#frag\"]")).contains("must not contain a fragment"));
        assert!(err(&format!("{base}web_origins = [\"https://x\"]")).contains("public clients only"));
        assert!(err(&format!("{base}scopes = [\"bad scope\"]")).contains("clients[c].scopes"));
        assert!(
            err(&format!("{base}permissions = [\"root\"]"))
                .contains("clients[c].permissions: \"root\" is not a permission")
        );
        assert!(
            err(&format!("{base}[[clients]]\nid = \"c\"\nsecret = \"t\"\ngrant_types = [\"client_credentials\"]"))
                .contains("declared twice")
        );
        assert_eq!(
            err(&format!("{base}session = {{ max_lifetime = \"13h\" }}")),
            "clients[c].session.max_lifetime (13h) must not exceed session.max_lifetime (12h)"
        );
        assert!(
            err(&format!("{base}secret_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\""))
                .contains("not both")
        );
    }

    #[test]
    fn post_logout_redirect_uris_are_absolute_without_fragment() {
        let base = "[[clients]]\nid = \"c\"\nsecret = \"s\"\ngrant_types = [\"client_credentials\"]\n";
        let c = Config::from_toml(
            &format!("{base}post_logout_redirect_uris = [\"https://app.example/bye?x=1\", \"com.example.app:/out\"]"),
            &no_env(),
        )
        .expect("valid");
        let uris: Vec<&str> = c.clients[0].post_logout_redirect_uris.iter().map(RedirectUri::as_str).collect();
        assert_eq!(uris, ["https://app.example/bye?x=1", "com.example.app:/out"]);
        assert!(Config::from_toml(base, &no_env()).expect("valid").clients[0].post_logout_redirect_uris.is_empty());
        assert!(err(&format!("{base}post_logout_redirect_uris = [\"https://app.example/bye#top\"]")).contains(
            "clients[c].post_logout_redirect_uris: \"https://app.example/bye#top\" must not contain a fragment"
        ));
        assert!(
            err(&format!("{base}post_logout_redirect_uris = [\"/bye\"]"))
                .contains("clients[c].post_logout_redirect_uris: \"/bye\" is not an absolute URI")
        );
    }

    #[test]
    fn client_ids_never_collide_with_usernames() {
        let text = "[[clients]]\nid = \"alice\"\nsecret = \"s\"\ngrant_types = [\"client_credentials\"]\n[[users]]\nusername = \"alice\"\npassword = \"p\"";
        assert!(err(text).contains("RFC 9700 4.15"));
    }

    #[test]
    fn users_are_checked() {
        assert!(err("[[users]]\nusername = \"bob\"").contains("users[bob].password: is required"));
        assert!(err("[[users]]\nusername = \"bob\"\npassword_hash = \"nope\"").contains("users[bob].password_hash"));
        assert!(err("[[users]]\nusername = \"\"\npassword = \"p\"").contains("users[0].username"));
        let c = Config::from_toml("[[users]]\nusername = \"bob\"\npassword = \"pw\"", &no_env()).expect("valid");
        assert!(c.users[0].password_hash.verify("pw"));
        assert!(c.warnings.iter().any(|w| w.contains("users[bob].password is given in plain text")));
    }
}
