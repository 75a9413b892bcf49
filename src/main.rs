//! The `tenure` command: `serve` (the default), `migrate`, `keys`,
//! `check-config`, `hash-secret`, and `admin` (src/cli/).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tenure::clock::{Clock, SystemClock};
use tenure::config::Config;
use tenure::secret::{PasswordHashString, Secret};
use tenure::store::key_store::KeyStore;
use tenure::token::keys::{KeyDir, retention};

/// mimalloc: the request path allocates many small buffers (JSON, tokens);
/// glibc malloc showed up at ~8% of a refresh profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tenure", version, about = "An OAuth 2.0 / OpenID Connect token issuer that gets sessions right")]
struct Cli {
    /// Config file (default: ./tenure.toml when present; also TENURE_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the issuer (the default).
    Serve,
    /// Create or upgrade the PostgreSQL schema (store = "postgres",
    /// database_url); a no-op when it is current. Run it before `serve`
    /// after installing or upgrading tenure.
    Migrate,
    /// Manage signing keys: in keys_dir, or in the database with
    /// store = "postgres".
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Validate the configuration and print the effective session policy.
    CheckConfig,
    /// Read a secret or password on standard input and print its argon2id
    /// hash, for `secret_hash` / `password_hash` in the config file.
    HashSecret,
    /// Manage a running issuer over its admin API, as a service account
    /// (TENURE_URL, TENURE_CLIENT_ID, TENURE_CLIENT_SECRET[_FILE], TENURE_ALLOW_INSECURE_HTTP).
    Admin(Box<tenure::cli::admin::AdminArgs>),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add a new key of `signing_alg` (and an RS256 companion for ID
    /// tokens), published at once and signing after key_publish_ahead; the
    /// previous one stays published until every token it signed has
    /// expired. A running server picks it up within 2 s. (To change the
    /// algorithm, change signing_alg and restart: the start rotates to a key
    /// of the new algorithm.)
    Rotate,
    /// List keys with their state (next, active, retired, expired, revoked).
    List,
    /// Delete retired keys whose tokens have all expired.
    Prune,
    /// Withdraw a compromised key at once: it leaves the JWKS and every
    /// token it signed is refused (a running server within 2 s). If it was
    /// signing, a replacement signs at once, without publish-ahead.
    Revoke {
        /// The key's kid (see `tenure keys list`).
        kid: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("TENURE_")).collect();
    // A client of a running issuer: it needs no server configuration.
    if let Some(Command::Admin(args)) = cli.command {
        if cli.config.is_some() {
            eprintln!(
                "tenure admin: --config does not apply: tenure admin reads no server configuration (see TENURE_URL)"
            );
            return ExitCode::from(2);
        }
        return ExitCode::from(tenure::cli::admin::main(*args, &env, SystemClock.now()));
    }
    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tenure: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command.unwrap_or(Command::Serve), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tenure: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `tenure migrate`: apply the schema migrations the database lacks.
fn migrate(config: &Config, now: tenure::clock::UnixTime) -> Result<(), String> {
    use tenure::store::postgres::{PgStore, migrate::latest};
    let tenure::config::StoreChoice::Postgres { url, .. } = &config.store else {
        return Err("migrate applies to the PostgreSQL store: set store = \"postgres\" and database_url \
                    (TENURE_STORE, TENURE_DATABASE_URL); the sled store needs no migration"
            .into());
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // One connection is all a migration needs.
        let store = PgStore::connect(url, 1).await.map_err(|e| e.to_string())?;
        let applied = store.migrate(now).await.map_err(|e| e.to_string())?;
        if applied.is_empty() {
            println!(
                "the database {} is at schema version {}, the current one: nothing to do",
                store.target(),
                latest()
            );
        }
        for m in &applied {
            println!("applied migration {} ({})", m.version, m.name);
        }
        if !applied.is_empty() {
            println!("the database {} is now at schema version {}", store.target(), latest());
        }
        Ok(())
    })
}

/// `tenure keys ...`: on `keys_dir`, or on the database with PostgreSQL
/// (where every replica takes the change within 2 s).
async fn keys_command(action: KeysAction, config: &Config, now: tenure::clock::UnixTime) -> Result<(), String> {
    let store = match &config.store {
        tenure::config::StoreChoice::Sled => KeyStore::Dir(KeyDir::new(&config.keys_dir)),
        tenure::config::StoreChoice::Postgres { url, .. } => {
            let pg = tenure::store::postgres::PgStore::connect(url, 1).await.map_err(|e| e.to_string())?;
            pg.require_current_schema().await.map_err(|e| e.to_string())?;
            tenure::store::key_store::database(pg, url, &config.keys_dir).await.map_err(|e| e.to_string())?
        }
    };
    let keep = retention(config.policy.access_token_ttl());
    let reload = match store {
        KeyStore::Dir(_) => "a running server within 2 s",
        KeyStore::Database(_) => "every replica within 2 s",
    };
    match action {
        KeysAction::Rotate => {
            let ahead = config.key_publish_ahead;
            let r = store.rotate(config.signing_alg, now, ahead).await.map_err(|e| e.to_string())?;
            let when = |k: &tenure::token::keys::KeyRecord| {
                if k.active_from() <= now {
                    "signs from now on".to_owned()
                } else {
                    format!("published now, signs from {} (key_publish_ahead = {ahead})", k.active_from())
                }
            };
            println!("new key {} ({}) {}", r.primary.kid, r.primary.alg, when(&r.primary));
            if let Some(c) = &r.companion {
                println!("new key {} ({}, ID tokens of clients asking for RS256) {}", c.kid, c.alg, when(c));
            }
            println!("the keys they replace sign until then and stay published for {keep} after");
            Ok(())
        }
        KeysAction::List => {
            let manifest = store.records().await.map_err(|e| e.to_string())?;
            for (k, state) in manifest.states(now, keep) {
                println!("{}  {}  {}  created {}  {}", k.kid, k.alg, k.role.as_str(), k.created_at, state);
            }
            Ok(())
        }
        KeysAction::Revoke { kid } => {
            let r = store.revoke(&kid, now).await.map_err(|e| e.to_string())?;
            println!(
                "revoked key {kid} ({}): removed from the JWKS; every token it signed is refused ({reload})",
                r.revoked.alg
            );
            if let Some(new) = &r.replacement {
                let origin = if r.generated { "new key" } else { "published next key" };
                println!(
                    "it was signing: {origin} {} ({}) signs from now on, without waiting for key_publish_ahead \
                     (a compromise beats publish-ahead; verifiers with a cached JWKS refetch on its unknown kid)",
                    new.kid, new.alg
                );
            }
            Ok(())
        }
        KeysAction::Prune => {
            for kid in store.prune(now, keep).await.map_err(|e| e.to_string())? {
                println!("deleted retired key {kid}");
            }
            Ok(())
        }
    }
}

fn run(command: Command, config: Config) -> Result<(), String> {
    let now = SystemClock.now();
    match command {
        Command::Serve => {
            tenure::telemetry::init_logging(&config.log_filter, config.log_format)?;
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(tenure::serve(config, tenure::shutdown_signal())).map_err(|e| e.to_string())
        }
        Command::Migrate => migrate(&config, now),
        Command::Keys { action } => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(keys_command(action, &config, now))
        }
        Command::CheckConfig => {
            let p = &config.policy;
            println!("configuration is valid");
            println!("listen = {}", config.listen);
            match &config.store {
                tenure::config::StoreChoice::Sled => {
                    println!("store = sled (data_dir = {})", config.data_dir.display())
                }
                tenure::config::StoreChoice::Postgres { url, pool_size } => {
                    println!("store = postgres (database {url}, database_pool_size = {pool_size})");
                }
            }
            println!("signing_alg = {}", config.signing_alg);
            println!("key_publish_ahead = {}", config.key_publish_ahead);
            let proxies: Vec<String> = config.trusted_proxies.nets().iter().map(ToString::to_string).collect();
            println!("trusted_proxies = [{}]", proxies.join(", "));
            println!("hashing_concurrency = {}", config.hashing_concurrency);
            println!("hashing_wait = {}", config.hashing_wait);
            for def in tenure::policy::POLICY_KEYS {
                println!("session.{} = {}", def.name, (def.effective)(p));
            }
            for (name, g) in &config.groups {
                let mut values: Vec<String> = Vec::new();
                let durations = [
                    ("idle_timeout", g.idle_timeout),
                    ("max_lifetime", g.max_lifetime),
                    ("access_token_ttl", g.access_token_ttl),
                ];
                values.extend(durations.iter().filter_map(|(key, v)| v.map(|v| format!("{key} = {v}"))));
                if let Some(n) = g.max_sessions {
                    values.push(format!("max_sessions = {n}"));
                }
                println!("session.groups.{name} = {{ {} }}", values.join(", "));
            }
            let server = &config.server;
            println!("server.request_header_timeout = {}s", server.request_header_timeout.as_secs());
            println!("server.request_body_timeout = {}s", server.request_body_timeout.as_secs());
            println!("server.keep_alive_timeout = {}s", server.keep_alive_timeout.as_secs());
            println!("server.first_byte_timeout = {}s", server.first_byte_timeout.as_secs());
            println!("server.max_connections = {}", server.max_connections);
            println!("server.max_connections_per_address = {}", server.max_connections_per_address);
            println!("server.max_requests_per_connection = {}", server.max_requests_per_connection);
            println!("clients = {}, users = {}", config.clients.len(), config.users.len());
            for w in &config.warnings {
                println!("warning: {w}");
            }
            Ok(())
        }
        Command::Admin(_) => Err("tenure admin runs without a server configuration".into()),
        Command::HashSecret => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
            let value = line.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                return Err("hash-secret reads the secret from standard input; none was given".into());
            }
            let hash = PasswordHashString::hash(&Secret::new(value)).map_err(|e| e.to_string())?;
            println!("{}", hash.as_str());
            Ok(())
        }
    }
}
