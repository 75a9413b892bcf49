//! `POST /token` (RFC 6749 3.2): authenticate the client, dispatch on
//! `grant_type`, sign, answer with `Cache-Control: no-store` (RFC 6749 5.1).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::internal;
use super::form::OAuthForm;
use super::state::AppState;
use crate::oauth::client::GrantType;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::error::ErrorCode;
use crate::oauth::{OAuthError, client_credentials};
use crate::telemetry::GrantLabels;
use crate::token::jwt::{self, TokenType};

/// RFC 6749 5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

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
            format!("grant_type {grant_type:?} is not supported; this server supports: client_credentials"),
        ));
    };
    let presented = PresentedClient::from_request(form.authorization.as_deref(), &form.params)?;
    let client = state.clients.authenticate(presented, &form.remote, now).await?;
    let claims = match grant {
        GrantType::ClientCredentials => {
            // A client's session override may shorten its tokens (SPEC 3).
            let ttl = state.policy().0.limits(false, client.session.as_ref()).access_token_ttl;
            client_credentials::grant(&client, &form.params, &state.issuer, now, ttl)?
        }
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {:?} is not implemented by this server yet", other.as_str()),
            ));
        }
    };
    let keys = state.keys();
    let access_token =
        jwt::sign(keys.active(), TokenType::Access, &claims).map_err(|e| internal("signing an access token", e))?;
    state.metrics.tokens_issued.get_or_create(&GrantLabels { grant_type: grant.as_str().to_owned() }).inc();
    tracing::debug!(client_id = %client.id, grant_type = grant.as_str(), jti = %claims.jti, "access token issued");
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: claims.exp.saturating_sub(claims.iat),
        scope: claims.scope,
    };
    Ok(no_store(Json(body).into_response()))
}

/// RFC 6749 5.1: responses with tokens must not be cached.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
