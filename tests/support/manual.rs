//! The in-process server on a manual clock: the router `tenure::app(state)`
//! with the binary's own connection handling (`tenure::http::serve::serve`)
//! on 127.0.0.1:0, its state on a [`ManualClock`] that only moves when the
//! test says so. Tests of expiry (idle timeout, token lifetimes, `max_age`)
//! use it instead of sleeping on the real binary's wall clock, and can test
//! to the second.
//!
//! It derefs to [`Server`], so the kit's flows (`kit::sign_in`,
//! `Browser::sign_in_for_code`, ...) take it as they take a process.
//! What it does not run: the background loops (sweeper, key watcher,
//! deliveries) and the first-run setup line, none of which an expiry test
//! observes.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use tenure::clock::{Clock, ManualClock, SystemClock};
use tenure::config::Config;
use tenure::duration::Secs;
use tenure::store::SledStore;

use super::Server;

/// A [`Server`] served in this process, whose clock the test moves.
pub struct ManualServer {
    server: Server,
    clock: ManualClock,
}

impl ManualServer {
    /// Serve `config` (tenure.toml text, with `env` as the `TENURE_*`
    /// variables the binary would read) with keys in a temporary directory
    /// and a temporary store; the clock starts at the wall clock's now.
    pub async fn start(config: &str, env: &[(&str, &str)]) -> ManualServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut config = Config::from_toml(config, &env).expect("a valid config");
        config.data_dir = dir.path().join("data");
        config.keys_dir = dir.path().join("keys");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let issuer = config.issuer.clone().unwrap_or_else(|| base.clone());
        let clock = ManualClock::at(SystemClock.now());
        let store = SledStore::temporary().expect("a temporary store");
        let state = tenure::AppState::new(config, issuer, store.into(), Arc::new(clock.clone()))
            .await
            .expect("the state starts");
        let (limits, proxies) = (state.config.server, state.config.trusted_proxies.clone());
        let router = tenure::app(state);
        let task = tokio::spawn(async move {
            let served = tenure::http::serve::serve(listener, router, limits, proxies, std::future::pending()).await;
            served.expect("the in-process server");
        });
        ManualServer { server: Server::in_process(base, dir, task), clock }
    }

    /// Move the clock `secs` seconds on.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Secs::new(secs));
    }
}

impl Deref for ManualServer {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}
