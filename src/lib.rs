//! # tenure
//!
//! An OAuth 2.0 / OpenID Connect token issuer built around one idea: a session
//! has two clocks — an idle clock carried by short-lived access tokens and an
//! absolute clock carried by the refresh-token family — and revoking a family,
//! a session or a user kills every token that descends from it.
//!
//! The crate is organised by concept (see docs/architecture.md):
//! [`config`] and [`policy`] (what operators set), [`clock`] (time as a
//! value), [`oauth`] (protocol rules, no HTTP), [`token`] (claims, signing,
//! keys), [`store`] (persistence behind a trait), [`service`] (the use
//! cases), [`worker`] (the background loops), [`http`] (the only code that
//! knows axum), [`telemetry`] (logs and metrics). Every import points down
//! the floors of docs/architecture.md; `architecture.rs` tests it.

#![forbid(unsafe_code)]

#[cfg(test)]
mod architecture;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod duration;
pub mod http;
pub mod logout;
pub mod net;
pub mod oauth;
pub mod policy;
pub mod secret;
pub mod service;
pub mod session;
pub mod ssf;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod user;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreChoice};
use crate::service::StartError;
use crate::store::{AnyStore, PgStore, SledStore, Store};

pub use crate::service::AppState;

/// The router for `state`; tests drive it with `oneshot`, `serve` with a socket.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Postgres(#[from] crate::store::postgres::PgError),
    #[error("TENURE_BOOTSTRAP_ADMIN_USERNAME: the administrator was not created: {0}")]
    Bootstrap(String),
    #[error("the first-run check failed: {0}")]
    FirstRun(String),
    #[error(
        "issuer: is required with store = \"postgres\" (TENURE_ISSUER): replicas must share one issuer, the URL \
         clients and resource servers know (such as https://id.example.com), and each replica would otherwise \
         take its own listening address"
    )]
    IssuerRequired,
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Run the issuer until `shutdown` completes, then drain in-flight requests
/// and make every write durable.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    // The store first: a second process on the same data_dir fails before
    // it takes a port.
    // The signing keys live with the store: keys_dir beside sled, the
    // database with PostgreSQL (every replica signs with the same keys).
    let (store, key_store) = match &config.store {
        StoreChoice::Sled => {
            // Private from the start (0700); the store tightens it and its
            // files if they were created looser.
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(&config.data_dir)
                .map_err(|source| ServeError::DataDir { path: config.data_dir.clone(), source })?;
            let keys = store::key_store::KeyStore::Dir(token::keys::KeyDir::new(&config.keys_dir));
            (AnyStore::from(SledStore::open(&config.data_dir)?), keys)
        }
        // SPEC 12: the schema must be exactly the one this build knows
        // (`tenure migrate` makes it so).
        StoreChoice::Postgres { url, pool_size } => {
            // SPEC 12: every replica must name the same issuer; a default
            // of each one's own address would differ between them.
            if config.issuer.is_none() {
                return Err(ServeError::IssuerRequired);
            }
            let store = PgStore::connect_serving(url, *pool_size).await?;
            let version = store.require_current_schema().await?;
            tracing::info!(database = %store.target(), schema = version, "PostgreSQL store");
            let keys =
                store::key_store::database(store.clone(), url, &config.keys_dir).await.map_err(StartError::from)?;
            (AnyStore::from(store), keys)
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr()?;
    let issuer = config.issuer.clone().unwrap_or_else(|| format!("http://{addr}"));
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Read before the caches are loaded, so a change made meanwhile at
    // another replica is noticed.
    let loaded_epoch = store.cache_epoch().await.ok();
    let state = AppState::with_key_store(config, issuer.clone(), store.clone(), clock, key_store).await?;
    let setup_url = first_run(&state).await?;
    let changed = Arc::new(tokio::sync::Notify::new());

    let sweeper = tokio::spawn(worker::sweeper::sweep_periodically(state.clone()));
    let watcher = tokio::spawn(worker::keys::watch_keys(state.clone()));
    let deliverer = tokio::spawn(worker::backchannel::deliver_periodically(state.clone()));
    let pusher = tokio::spawn(worker::ssf_push::push_periodically(state.clone()));
    let follower = tokio::spawn(worker::replica::follow_changes(state.clone(), loaded_epoch, changed.clone()));
    // PostgreSQL: a change at another replica wakes the follower at once.
    let listener_task = match &store {
        AnyStore::Postgres(pg) => Some(tokio::spawn(pg.clone().listen_for_changes(changed.clone()))),
        AnyStore::Sled(_) => None,
    };

    tracing::info!(%addr, %issuer, "tenure is serving");
    // One plain line on stdout for scripts and tests that started us on port 0.
    println!("tenure listening on http://{addr} (issuer {issuer})");
    // SPEC 9 "First run": after that line, which scripts read first.
    if let Some(url) = setup_url {
        tracing::warn!(%url, "no administrator yet: open this one-time setup URL within 1 hour to create one");
        // Not println!: a reader that took the first line and closed the
        // pipe must not stop the server (println! panics on EPIPE).
        use std::io::Write;
        let line = format!("tenure setup: no administrator yet; create one within 1 hour at {url}\n");
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            tracing::debug!("standard output is closed; the setup URL is in the log only");
        }
    }

    let limits = state.config.server;
    let proxies = state.config.trusted_proxies.clone();
    let served = http::serve::serve(listener, app(state), limits, proxies, shutdown).await;
    sweeper.abort();
    watcher.abort();
    deliverer.abort();
    pusher.abort();
    follower.abort();
    if let Some(task) = listener_task {
        task.abort();
    }
    store.flush().await?;
    tokio::task::spawn_blocking(move || store.close()).await.map_err(std::io::Error::other)?;
    tracing::info!("tenure stopped");
    Ok(served?)
}

/// SPEC 9 "First run": create the bootstrap administrator of
/// `TENURE_BOOTSTRAP_ADMIN_*` when none exists; then, if there is still no
/// administrator, draw a one-time setup token and return its URL, which
/// `serve` prints once, on standard output and in the log (the only place
/// it is ever shown; only its hash is kept).
async fn first_run(state: &AppState) -> Result<Option<String>, ServeError> {
    use crate::service::ServiceError;
    use crate::service::setup::{self, Bootstrap};
    let message = |e: ServiceError| match e {
        ServiceError::Invalid(m)
        | ServiceError::InvalidSetting { message: m, .. }
        | ServiceError::NotFound(m)
        | ServiceError::Conflict(m)
        | ServiceError::Forbidden(m) => m,
        ServiceError::Unavailable { .. } => "every hashing slot stayed busy".to_owned(),
        ServiceError::Internal(Some(context)) => format!("{context} failed (see the log)"),
        other => format!("{other:?}"),
    };
    let now = state.now();
    if let Some(admin) = &state.config.bootstrap_admin {
        match setup::bootstrap(state, &admin.username, &admin.password, now).await.map_err(message) {
            Ok(Bootstrap::Created(user)) => {
                tracing::info!(username = %user.username, "administrator created from TENURE_BOOTSTRAP_ADMIN_*");
            }
            Ok(Bootstrap::AlreadyAdministered) => {
                tracing::info!("an administrator exists already; TENURE_BOOTSTRAP_ADMIN_* ignored");
            }
            Err(m) => return Err(ServeError::Bootstrap(m)),
        }
    }
    if setup::is_done(state).await.map_err(|e| ServeError::FirstRun(message(e)))? {
        return Ok(None);
    }
    let token = setup::open(state, now).await.map_err(|e| ServeError::FirstRun(message(e)))?;
    Ok(Some(format!("{}{}?token={token}", state.issuer.trim_end_matches('/'), setup::SETUP_PATH)))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}
