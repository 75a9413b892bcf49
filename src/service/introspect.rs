//! `POST /introspect` (RFC 7662): any authenticated confidential client may
//! ask whether a token is active. A token is inactive the moment its family,
//! session or user is revoked, a deadline passes, or a policy change ends
//! its session; an inactive answer is only `{"active": false}` (2.2).

use super::{AppState, ClientRequest, ServiceError};
use crate::clock::UnixTime;
use crate::oauth::OAuthError;
use crate::service::lookup;

/// The RFC 7662 2.2 answer about `request`'s `token` at `now`, under
/// settings and clients current for this request (SPEC 12; it changes
/// nothing, so it may be worked out again after a reload).
pub async fn introspect(
    state: &AppState,
    request: ClientRequest<'_>,
    now: UnixTime,
) -> Result<serde_json::Value, ServiceError> {
    state.with_fresh_caches(|| answer(state, &request, now)).await
}

async fn answer(
    state: &AppState,
    request: &ClientRequest<'_>,
    now: UnixTime,
) -> Result<serde_json::Value, ServiceError> {
    let client = request.authenticate(state, now).await?;
    if client.is_public() {
        return Err(OAuthError::invalid_client(format!(
            "client {:?} is public; only confidential clients may introspect (RFC 7662 2.1)",
            client.id
        ))
        .into());
    }
    let token = request.params.require("token")?;
    let keys = state.keys();
    let store_error =
        |e: crate::store::StoreError| -> ServiceError { crate::service::error::oauth_store("/introspect", e).into() };
    let found = state
        .lookup(&keys, now)
        .find(&state.store, token, request.params.get("token_type_hint"))
        .await
        .map_err(store_error)?;
    // A token whose client was deleted is dead, whatever its `exp`.
    let found = match found {
        lookup::Found::Access(claims) if !state.holder_exists(&claims) => lookup::Found::Unknown,
        other => other,
    };
    // SPEC 14: the holder's groups tighten the policy the token is judged by.
    let subject = match &found {
        lookup::Found::Access(claims) if claims.fid.is_some() => Some(claims.sub.as_str()),
        lookup::Found::Refresh { family, .. } => Some(family.username.as_str()),
        _ => None,
    };
    let history = match subject {
        Some(username) => state.user_history(username).await.map_err(store_error)?,
        None => state.history(),
    };
    let overrides = |client_id: &str| state.client_override(client_id);
    lookup::introspect(&state.store, found, &state.issuer, &history, overrides, now).await.map_err(store_error)
}
