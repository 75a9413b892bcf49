//! `POST /revoke` (RFC 7009): a client revokes one of its own tokens; a
//! refresh token or an access token kills its whole family (SPEC 5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::form::OAuthForm;
use super::token::no_store;
use crate::oauth::OAuthError;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::error::ErrorCode;
use crate::oauth::lookup::{Found, Lookup};
use crate::service::{AppState, ServiceError};

pub async fn revoke(
    State(state): State<AppState>,
    form: Result<OAuthForm, ServiceError>,
) -> Result<Response, ServiceError> {
    let form = form?;
    let now = state.now();
    let presented = PresentedClient::from_request(form.authorization.as_deref(), &form.params)?;
    let client = state.clients.authenticate(presented, &form.remote, now).await?;
    let token = form.params.require("token")?;
    let keys = state.keys();
    let lookup = Lookup {
        keys: &keys,
        verified: &state.verified,
        retain: state.key_retention(),
        max_lifetime: state.max_token_lifetime(),
        issuer: &state.issuer,
        refresh_key: &state.refresh_key,
        now,
    };
    let found = lookup.find(&state.store, token, form.params.get("token_type_hint")).await.map_err(store_error)?;
    let not_yours = || {
        // RFC 7009 2.1: only the client the token was issued to may revoke it.
        OAuthError::new(ErrorCode::UnauthorizedClient, format!("the token was not issued to client {:?}", client.id))
    };
    let family_id = match found {
        // RFC 7009 2.2: an invalid or unknown token is not an error.
        Found::Unknown => None,
        Found::Refresh { family, .. } => {
            if family.client_id != client.id {
                return Err(not_yours().into());
            }
            Some(family.id)
        }
        Found::Access(claims) => {
            if claims.client_id != client.id {
                return Err(not_yours().into());
            }
            if claims.act.is_some() {
                // Revoking it would kill the user's whole family, held by
                // another client; an exchanged token dies with its subject.
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedTokenType,
                    "an exchanged token cannot be revoked on its own; it expires at its exp and dies with the subject's session",
                )
                .into());
            }
            match claims.fid {
                Some(fid) => Some(fid),
                None => {
                    return Err(OAuthError::new(
                        ErrorCode::UnsupportedTokenType,
                        "client-credentials access tokens cannot be revoked; they expire at their exp",
                    )
                    .into());
                }
            }
        }
    };
    if let Some(fid) = family_id {
        let revocation = state.revocation(now);
        revocation.family(&fid, &format!("client:{}", client.id), "revoked_by_client").await.map_err(store_error)?;
    }
    Ok(no_store(StatusCode::OK.into_response()))
}

fn store_error(e: crate::store::StoreError) -> OAuthError {
    tracing::error!(error = %e, "store failure at /revoke");
    OAuthError::server_error()
}
