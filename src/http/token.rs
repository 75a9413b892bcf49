//! `POST /token` (RFC 6749 3.2): extract the form, call
//! [`service::token::token`], answer with `Cache-Control: no-store`
//! (RFC 6749 5.1) and, to DPoP requests, a fresh nonce (RFC 9449 8).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::form::OAuthForm;
use crate::service::token::TokenRequest;
use crate::service::{self, AppState, ClientRequest, ServiceError};

pub async fn token(State(state): State<AppState>, form: Result<OAuthForm, ServiceError>) -> Response {
    let now = state.now();
    // RFC 9449 8: every answer to a DPoP request carries a fresh nonce.
    let with_dpop = form.as_ref().is_ok_and(|f| !f.dpop.is_empty());
    let result = match form {
        Ok(form) => {
            let dpop: Vec<&[u8]> = form.dpop.iter().map(HeaderValue::as_bytes).collect();
            let client = ClientRequest {
                params: &form.params,
                authorization: form.authorization.as_deref(),
                remote: &form.remote,
            };
            let request = TokenRequest { client, dpop: &dpop };
            service::token::token(&state, request, now).await
        }
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
        Ok(body) => no_store(Json(body).into_response()),
        Err(e) => e.into_response(),
    };
    if with_dpop && let Ok(v) = HeaderValue::from_str(&state.dpop.nonces.current(now)) {
        response.headers_mut().insert(DPOP_NONCE, v);
    }
    response
}

/// RFC 9449 8: the header that hands out the server's nonce.
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

/// RFC 6749 5.1: responses with tokens must not be cached.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
