//! Discovery (OIDC Discovery 1.0 section 3, RFC 8414 section 2) and the JWKS.
//!
//! Only what is implemented is advertised.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::service::AppState;

pub fn metadata(state: &AppState) -> serde_json::Value {
    let iss = &state.issuer;
    let clients = state.clients.all();
    let mut scopes: Vec<&str> = clients.iter().flat_map(|c| c.scopes.iter().map(|s| s.as_str())).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let alg = state.config.signing_alg.as_str();
    // OIDC Core 15.1 / Discovery 3: RS256 is always offered for ID tokens.
    let id_token_algs: Vec<&str> = if alg == "RS256" { vec![alg] } else { vec![alg, "RS256"] };
    serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "end_session_endpoint": format!("{iss}/logout"),
        // RFC 8628 4 (SPEC 15).
        "device_authorization_endpoint": format!("{iss}/device_authorization"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "jwks_uri": format!("{iss}/jwks.json"),
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": crate::oauth::dpop::ALGS,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "access_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "azp", "preferred_username", "name", "email"],
        "scopes_supported": scopes,
        // tenure's activity-aware idle (docs/api.md): a refresh_token grant
        // may say `activity=background`; it rotates without moving the idle clock.
        "refresh_token_activity_values_supported": ["interactive", "background"],
    })
}

pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    cacheable(Json(metadata(&state)).into_response())
}

pub async fn oauth_authorization_server(State(state): State<AppState>) -> Response {
    cacheable(Json(metadata(&state)).into_response())
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.keys().jwks(state.now(), state.key_retention());
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    cacheable(response)
}

/// Short caching: clients re-fetch on an unknown `kid` anyway.
fn cacheable(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}
