//! The key watcher: reloads the signing keys when another process (`tenure
//! keys rotate`) or another replica changed them.

use std::sync::Arc;

use crate::service::AppState;
use crate::store::key_store::{KeyStore, RELOAD_EVERY};

/// Reload the key set when the keys changed: the manifest (after `tenure
/// keys rotate`) or, with PostgreSQL, the key epoch (a change by any
/// replica), checked every [`RELOAD_EVERY`]; a
/// notification from the database (LISTEN) wakes the check at once.
pub async fn watch_keys(state: AppState) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let listener = match &state.key_store {
        KeyStore::Database(db) => Some(tokio::spawn(db.clone().listen(changed.clone()))),
        KeyStore::Dir(_) => None,
    };
    let _stop_listener = AbortOnDrop(listener);
    let mut last = state.key_store.version().await.ok();
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = changed.notified() => {}
        }
        let now = match state.key_store.version().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "checking the signing keys for changes failed");
                continue;
            }
        };
        if now != last {
            match state.reload_keys().await {
                Ok(()) => {
                    last = now;
                    tracing::info!(kid = %state.keys().active(state.now()).kid, "signing keys reloaded");
                }
                Err(e) => tracing::error!(error = %e, "reloading signing keys failed; keeping the current ones"),
            }
        }
    }
}

/// Aborts a task when dropped (the LISTEN task dies with the watch loop).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}
