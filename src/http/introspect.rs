//! `POST /introspect` (RFC 7662): any authenticated confidential client may
//! ask whether a token is active. A token is inactive the moment its family,
//! session or user is revoked, a deadline passes, or a policy change ends
//! its session; an inactive answer is only `{"active": false}` (2.2).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::form::OAuthForm;
use super::token::no_store;
use crate::oauth::OAuthError;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::lookup::{self, Lookup};
use crate::service::{AppState, ServiceError};

pub async fn introspect(
    State(state): State<AppState>,
    form: Result<OAuthForm, ServiceError>,
) -> Result<Response, ServiceError> {
    let form = form?;
    let now = state.now();
    let presented = PresentedClient::from_request(form.authorization.as_deref(), &form.params)?;
    let client = state.clients.authenticate(presented, &form.remote, now).await?;
    if client.is_public() {
        return Err(OAuthError::invalid_client(format!(
            "client {:?} is public; only confidential clients may introspect (RFC 7662 2.1)",
            client.id
        ))
        .into());
    }
    let token = form.params.require("token")?;
    let keys = state.keys();
    let finder = Lookup {
        keys: &keys,
        verified: &state.verified,
        retain: state.key_retention(),
        max_lifetime: state.max_token_lifetime(),
        issuer: &state.issuer,
        refresh_key: &state.refresh_key,
        now,
    };
    let store_error = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store failure at /introspect");
        OAuthError::server_error()
    };
    let found = finder.find(&state.store, token, form.params.get("token_type_hint")).await.map_err(store_error)?;
    let history = state.history();
    let overrides = |client_id: &str| state.client_override(client_id);
    let body =
        lookup::introspect(&state.store, found, &state.issuer, &history, overrides, now).await.map_err(store_error)?;
    Ok(no_store(Json(body).into_response()))
}
