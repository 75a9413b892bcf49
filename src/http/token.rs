//! `POST /token` (RFC 6749 3.2): authenticate the client, dispatch on
//! `grant_type`, sign, answer with `Cache-Control: no-store` (RFC 6749 5.1).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::internal;
use super::form::OAuthForm;
use super::state::AppState;
use crate::oauth::client::GrantType;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::error::ErrorCode;
use crate::oauth::tokens::{Minter, TokenResponse};
use crate::oauth::{OAuthError, client_credentials, code_grant, refresh_grant};
use crate::telemetry::GrantLabels;
use crate::token::jwt::{self, TokenType};

pub async fn token(State(state): State<AppState>, form: Result<OAuthForm, OAuthError>) -> Result<Response, OAuthError> {
    let result = match form {
        Ok(form) => handle(&state, form).await,
        Err(rejected) => Err(rejected),
    };
    if let Err(e) = &result {
        state
            .metrics
            .oauth_errors
            .get_or_create(&crate::telemetry::ErrorLabels { error: e.code.as_str().to_owned() })
            .inc();
    }
    result
}

async fn handle(state: &AppState, form: OAuthForm) -> Result<Response, OAuthError> {
    let now = state.now();
    let grant_type = form.params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {grant_type:?} is not supported; this server supports: authorization_code, refresh_token, client_credentials"
            ),
        ));
    };
    let presented = PresentedClient::from_request(form.authorization.as_deref(), &form.params)?;
    let client = state.clients.authenticate(presented, &form.remote, now).await?;
    let keys = state.keys();
    let history = state.history();
    let minter = Minter {
        keys: &keys,
        clients: &state.clients,
        users: &state.users,
        refresh_key: &state.refresh_key,
        history: &history,
        issuer: &state.issuer,
        now,
    };
    let body = match grant {
        GrantType::ClientCredentials => {
            // A client's session override may shorten its tokens (SPEC 3).
            let ttl = history.current().limits(false, client.session.as_ref()).access_token_ttl;
            let claims = client_credentials::grant(&client, &form.params, &state.issuer, now, ttl)?;
            let access_token = jwt::sign(keys.active(), TokenType::Access, &claims)
                .map_err(|e| internal("signing an access token", e))?;
            TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in: claims.exp.saturating_sub(claims.iat),
                scope: claims.scope,
                refresh_token: None,
                refresh_expires_in: None,
                session_expires_in: None,
                id_token: None,
            }
        }
        GrantType::AuthorizationCode => code_grant::redeem(&state.store, &minter, &client, &form.params).await?,
        GrantType::RefreshToken => refresh_grant::refresh(&state.store, &minter, &client, &form.params).await?,
        GrantType::TokenExchange => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {:?} is not implemented by this server yet", grant.as_str()),
            ));
        }
    };
    state.metrics.tokens_issued.get_or_create(&GrantLabels { grant_type: grant.as_str().to_owned() }).inc();
    tracing::debug!(client_id = %client.id, grant_type = grant.as_str(), "tokens issued");
    Ok(no_store(Json(body).into_response()))
}

/// RFC 6749 5.1: responses with tokens must not be cached.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
