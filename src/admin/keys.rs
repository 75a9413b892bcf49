//! Signing keys (SPEC 10): list with state and age, rotate. The key files
//! stay in `keys_dir`; a rotation here is the same as `tenure keys rotate`
//! and is put in force at once in this process.

use serde::Serialize;

use super::{Actor, AdminError, Result};
use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::http::AppState;
use crate::store::Store;
use crate::token::keys::KeyRecord;

#[derive(Clone, Debug, Serialize)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `active` (signs new tokens), `retired` (still published so tokens it
    /// signed verify) or `expired` (no longer published; pruned soon).
    pub state: &'static str,
    pub created_at: String,
    pub age_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_until: Option<String>,
}

fn view(record: &KeyRecord, now: UnixTime, retain: crate::duration::Secs) -> KeyView {
    let (state, published_until) = match record.retired_at {
        None => ("active", None),
        Some(t) if now < t.plus(retain) => ("retired", Some(t.plus(retain).to_rfc3339())),
        Some(_) => ("expired", None),
    };
    KeyView {
        kid: record.kid.clone(),
        alg: record.alg.as_str().to_owned(),
        state,
        created_at: record.created_at.to_rfc3339(),
        age_seconds: now.as_secs().saturating_sub(record.created_at.as_secs()),
        retired_at: record.retired_at.map(UnixTime::to_rfc3339),
        published_until,
    }
}

/// Every key in the manifest, newest first.
pub fn list(state: &AppState, now: UnixTime) -> Result<Vec<KeyView>> {
    let manifest = state.key_dir.read_manifest().map_err(|e| AdminError::internal("reading the key manifest", e))?;
    let retain = state.key_retention();
    Ok(manifest.keys.iter().rev().map(|k| view(k, now, retain)).collect())
}

/// Generate a new active key of the configured algorithm; the previous one
/// stays published until every token it signed has expired.
pub async fn rotate(state: &AppState, actor: &Actor, now: UnixTime) -> Result<KeyView> {
    let dir = state.key_dir.clone();
    let alg = state.config.signing_alg;
    let record = tokio::task::spawn_blocking(move || dir.rotate(alg, now))
        .await
        .map_err(|e| AdminError::internal("rotating the signing key", e))?
        .map_err(|e| AdminError::internal("rotating the signing key", e))?;
    state.reload_keys().map_err(|e| AdminError::internal("loading the new signing key", e))?;
    let event = AuditEvent::new(now, "key_rotated", actor.name.clone(), format!("key:{}", record.kid))
        .details(serde_json::json!({ "alg": record.alg.as_str() }));
    event.log();
    state.store.append_audit(&event).await.map_err(|e| AdminError::internal("auditing a key rotation", e))?;
    Ok(view(&record, now, state.key_retention()))
}
