//! `POST /token` (RFC 6749 3.2): authenticate the client, dispatch on
//! `grant_type`, sign, answer with `Cache-Control: no-store` (RFC 6749 5.1).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::internal;
use super::form::OAuthForm;
use crate::audit::{AuditEvent, EventKind};
use crate::oauth::client::GrantType;
use crate::oauth::client_auth::PresentedClient;
use crate::oauth::dpop::{DpopError, Expected, Proof};
use crate::oauth::error::ErrorCode;
use crate::oauth::exchange::{ACCESS_TOKEN_TYPE as EXCHANGED_TYPE, Exchange};
use crate::oauth::tokens::{Minter, TokenResponse};
use crate::oauth::{OAuthError, client_credentials, code_grant, refresh_grant};
use crate::service::{AppState, ServiceError};
use crate::store::Store;
use crate::telemetry::GrantLabels;
use crate::token::jwt::{self, TokenType};

pub async fn token(State(state): State<AppState>, form: Result<OAuthForm, ServiceError>) -> Response {
    // RFC 9449 8: every answer to a DPoP request carries a fresh nonce.
    let with_dpop = form.as_ref().is_ok_and(|f| !f.dpop.is_empty());
    let result = match form {
        Ok(form) => handle(&state, form).await.map_err(ServiceError::OAuth),
        Err(rejected) => Err(rejected),
    };
    if let Err(ServiceError::OAuth(e)) = &result {
        state
            .metrics
            .oauth_errors
            .get_or_create(&crate::telemetry::ErrorLabels { error: e.code.as_str().to_owned() })
            .inc();
    }
    let mut response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if with_dpop && let Ok(v) = HeaderValue::from_str(&state.dpop.nonces.current(state.now())) {
        response.headers_mut().insert(DPOP_NONCE, v);
    }
    response
}

/// RFC 9449 8: the header that hands out the server's nonce.
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

/// The checked DPoP proof of a token request (`POST {issuer}/token`, with
/// the server's nonce when required): `None` without a `DPoP` header.
fn token_proof(
    state: &AppState,
    values: &[HeaderValue],
    now: crate::clock::UnixTime,
) -> Result<Option<Proof>, DpopError> {
    let values: Vec<&[u8]> = values.iter().map(HeaderValue::as_bytes).collect();
    let htu = format!("{}/token", state.issuer);
    state.dpop.check(&values, &Expected { htm: "POST", htu: &htu, access_token: None }, now)
}

fn dpop_error(e: DpopError) -> OAuthError {
    match e {
        DpopError::Invalid(m) => OAuthError::new(ErrorCode::InvalidDpopProof, m),
        DpopError::UseNonce => OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the server's nonce: retry with the nonce of the DPoP-Nonce header",
        ),
    }
}

async fn handle(state: &AppState, form: OAuthForm) -> Result<Response, OAuthError> {
    let now = state.now();
    let grant_type = form.params.require("grant_type")?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {grant_type:?} is not supported; this server supports: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange"
            ),
        ));
    };
    let presented = PresentedClient::from_request(form.authorization.as_deref(), &form.params)?;
    let client = state.clients.authenticate(presented, &form.remote, now).await?;
    let proof = token_proof(state, &form.dpop, now).map_err(dpop_error)?;
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let bound = |claims: &mut crate::token::claims::AccessClaims| {
        claims.cnf = jkt.map(|jkt| crate::token::claims::Confirmation { jkt: jkt.to_owned() });
    };
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let keys = state.keys();
    let history = state.history();
    let minter = Minter {
        keys: &keys,
        clients: &state.clients,
        users: state,
        refresh_key: &state.refresh_key,
        history: &history,
        issuer: &state.issuer,
        now,
    };
    let body = match grant {
        GrantType::ClientCredentials => {
            // A client's session override may shorten its tokens (SPEC 3).
            let ttl = history.current().limits(false, client.session.as_ref()).access_token_ttl;
            let mut claims = client_credentials::grant(&client, &form.params, &state.issuer, now, ttl)?;
            bound(&mut claims);
            let access_token = jwt::sign(keys.active(now), TokenType::Access, &claims)
                .map_err(|e| internal("signing an access token", e))?;
            TokenResponse {
                access_token,
                issued_token_type: None,
                token_type,
                expires_in: claims.exp.saturating_sub(claims.iat),
                scope: claims.scope,
                refresh_token: None,
                refresh_expires_in: None,
                session_expires_in: None,
                id_token: None,
            }
        }
        GrantType::AuthorizationCode => {
            code_grant::redeem(&state.store, &minter, &client, &form.params, proof.as_ref()).await?
        }
        GrantType::RefreshToken => {
            refresh_grant::refresh(&state.store, &minter, &client, &form.params, proof.as_ref()).await?
        }
        GrantType::TokenExchange => exchange(state, &client, &form.params, &keys, &history, now, jkt).await?,
    };
    state.metrics.tokens_issued.get_or_create(&GrantLabels { grant_type: grant.as_str().to_owned() }).inc();
    tracing::debug!(client_id = %client.id, grant_type = grant.as_str(), "tokens issued");
    Ok(no_store(Json(body).into_response()))
}

/// RFC 8693 2.2: the exchanged access token; refusals for policy reasons
/// are audited.
async fn exchange(
    state: &AppState,
    client: &crate::oauth::client::Client,
    params: &crate::oauth::params::Params,
    keys: &crate::token::keys::KeySet,
    history: &crate::policy::PolicyHistory,
    now: crate::clock::UnixTime,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let exchange = Exchange { keys, retain: state.key_retention(), issuer: &state.issuer, history, now };
    let overrides = |client_id: &str| state.client_override(client_id);
    let mut claims = match exchange.decide(&state.store, client, overrides, params).await {
        Ok(claims) => claims,
        Err(refusal) => {
            if refusal.audit {
                let event = AuditEvent::new(
                    now,
                    EventKind::TokenExchangeRefused,
                    format!("client:{}", client.id),
                    "token_exchange",
                )
                .reason(refusal.error.description.clone())
                .details(serde_json::json!({
                    "error": refusal.error.code.as_str(),
                    "audience": params.get("audience").or(params.get("resource")),
                }));
                event.log();
                state.store.append_event(&event).await.map_err(|e| internal("auditing a refused exchange", e))?;
            }
            return Err(refusal.error);
        }
    };
    claims.cnf = jkt.map(|jkt| crate::token::claims::Confirmation { jkt: jkt.to_owned() });
    let access_token = jwt::sign(keys.active(now), TokenType::Access, &claims)
        .map_err(|e| internal("signing an exchanged token", e))?;
    tracing::info!(client_id = %client.id, audience = %claims.aud, sub = %claims.sub, "token exchanged");
    Ok(TokenResponse {
        access_token,
        issued_token_type: Some(EXCHANGED_TYPE),
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: claims.exp.saturating_sub(claims.iat),
        scope: claims.scope,
        refresh_token: None,
        refresh_expires_in: None,
        session_expires_in: None,
        id_token: None,
    })
}

/// RFC 6749 5.1: responses with tokens must not be cached.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
