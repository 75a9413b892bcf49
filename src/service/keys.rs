//! Signing keys (SPEC 10): list with state and age, rotate. The keys stay
//! where the store keeps them (`keys_dir` with sled, the database with
//! PostgreSQL); a rotation here is the same as `tenure keys rotate`: the new
//! key is published at once and signs after `key_publish_ahead`.

use serde::Serialize;

use super::actor::Actor;
use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::service::AppState;
use crate::store::Store;
use crate::token::keys::{KeyRecord, KeyState};

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `primary` (signs every token) or `rs256_companion` (RS256 ID tokens).
    pub role: &'static str,
    /// `next` (published, signs from `active_from`), `active` (signs new
    /// tokens), `retired` (published until `published_until` so the tokens
    /// it signed verify), `expired` (no longer published) or `revoked`.
    pub state: &'static str,
    pub created_at: String,
    pub age_seconds: u64,
    pub active_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn view(record: &KeyRecord, state: &KeyState, now: UnixTime) -> KeyView {
    let (name, retired_at, published_until, revoked_at) = match *state {
        KeyState::Next { .. } => ("next", None, None, None),
        KeyState::Active => ("active", None, None, None),
        KeyState::Retired { retired_at, published_until } => ("retired", Some(retired_at), Some(published_until), None),
        KeyState::Expired { retired_at } => ("expired", Some(retired_at), None, None),
        KeyState::Revoked { revoked_at } => ("revoked", None, None, Some(revoked_at)),
    };
    KeyView {
        kid: record.kid.clone(),
        alg: record.alg.as_str().to_owned(),
        role: record.role.as_str(),
        state: name,
        created_at: record.created_at.to_rfc3339(),
        age_seconds: now.as_secs().saturating_sub(record.created_at.as_secs()),
        active_from: record.active_from().to_rfc3339(),
        retired_at: retired_at.map(UnixTime::to_rfc3339),
        published_until: published_until.map(UnixTime::to_rfc3339),
        revoked_at: revoked_at.map(UnixTime::to_rfc3339),
    }
}

/// Every key in the manifest, newest first.
pub async fn list(state: &AppState, now: UnixTime) -> Result<Vec<KeyView>> {
    let manifest =
        state.key_store.records().await.map_err(|e| ServiceError::internal_in("reading the key manifest", e))?;
    Ok(manifest.states(now, state.key_retention()).iter().map(|(k, s)| view(k, s, now)).collect())
}

/// Generate the next key of the configured algorithm (and its RS256
/// companion): published at once, signing after `key_publish_ahead`. The
/// previous key stays published until every token it signed has expired.
/// Returns the new keys.
pub async fn rotate(state: &AppState, actor: &Actor, now: UnixTime) -> Result<Vec<KeyView>> {
    let alg = state.config.signing_alg;
    let ahead = state.config.key_publish_ahead;
    let rotation = state
        .key_store
        .rotate(alg, now, ahead)
        .await
        .map_err(|e| ServiceError::internal_in("rotating the signing key", e))?;
    state.reload_keys().await.map_err(|e| ServiceError::internal_in("loading the new signing key", e))?;
    let new_kids: Vec<&str> =
        std::iter::once(&rotation.primary).chain(rotation.companion.as_ref()).map(|k| k.kid.as_str()).collect();
    let event =
        AuditEvent::new(now, EventKind::KeyRotated, actor.name.clone(), format!("key:{}", rotation.primary.kid))
            .details(serde_json::json!({
                "alg": rotation.primary.alg.as_str(),
                "kids": new_kids,
                "active_from": rotation.active_from.to_rfc3339(),
            }));
    state.store.append_event(&event).await.map_err(|e| ServiceError::internal_in("auditing a key rotation", e))?;
    event.log();
    Ok(list(state, now).await?.into_iter().filter(|k| new_kids.contains(&k.kid.as_str())).collect())
}
