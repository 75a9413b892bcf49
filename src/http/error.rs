//! The one place where errors of the JSON and OAuth endpoints become HTTP
//! responses: [`ServiceError`] (see `service::error`).
//!
//! OAuth endpoints answer in the RFC 6749 5.2 shape
//! (`{"error","error_description"}`); resource endpoints with an RFC 6750
//! challenge; the admin and account API as `{"error","message"}`. Internal
//! details are logged, never sent. (The HTML pages — sign-in, logout,
//! console — render their errors as pages, in their own modules.)

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::{ErrorCode, OAuthError};
use crate::service::{BearerError, ServiceError};

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (status, error, message, retry_after) = match self {
            ServiceError::OAuth(e) => return oauth(e),
            ServiceError::Bearer(e) => return bearer(e),
            ServiceError::Unauthenticated { invalid_token, message } => {
                let error = if invalid_token { "invalid_token" } else { "unauthorized" };
                (StatusCode::UNAUTHORIZED, error, message, None)
            }
            ServiceError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m, None),
            ServiceError::InvalidGrant(m) => (StatusCode::BAD_REQUEST, "invalid_grant", m, None),
            ServiceError::InvalidSetting { message, .. } => (StatusCode::BAD_REQUEST, "invalid_setting", message, None),
            ServiceError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request", m, None),
            ServiceError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", m, None),
            ServiceError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, None),
            ServiceError::InsufficientScope(m) => (StatusCode::FORBIDDEN, "insufficient_scope", m, None),
            ServiceError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, None),
            ServiceError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m, None),
            ServiceError::TooManyRequests { message, retry_after_secs } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message, Some(retry_after_secs))
            }
            ServiceError::Unavailable { message, retry_after_secs } => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", message, retry_after_secs)
            }
            ServiceError::Internal(context) => {
                let message = match context {
                    Some(context) => format!("the server could not complete the request ({context})"),
                    None => "the server could not complete the request".to_owned(),
                };
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error", message, None)
            }
        };
        let mut response = (status, Json(serde_json::json!({ "error": error, "message": message }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if error == "invalid_token" {
                "Bearer realm=\"tenure\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"tenure\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// RFC 6749 5.2: `{"error","error_description"}`, never cached.
fn oauth(e: OAuthError) -> Response {
    let status = match e.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TemporarilyUnavailable { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut body = serde_json::json!({ "error": e.code.as_str(), "error_description": e.description });
    // SPEC 14: an extra member (RFC 6749 5.2 lets a response carry more).
    if let Some(reason) = e.end_reason {
        body["session_end_reason"] = serde_json::Value::from(reason.as_str());
    }
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    match e.code {
        // RFC 6749 5.2: 401 with WWW-Authenticate for the scheme used.
        ErrorCode::InvalidClient => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tenure\""));
        }
        ErrorCode::TemporarilyUnavailable { retry_after_secs } | ErrorCode::Overloaded { retry_after_secs } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        _ => {}
    }
    response
}

/// The DPoP challenge's `algs` parameter (RFC 9449 7.1).
fn dpop_algs() -> String {
    crate::oauth::dpop::ALGS.join(" ")
}

/// RFC 6750 3.1 (RFC 9449 7.1 for DPoP): the status, a `WWW-Authenticate`
/// challenge naming the error, and `{"error","error_description"}`.
fn bearer(e: BearerError) -> Response {
    if let BearerError::Unavailable { retry_after_secs } = e {
        // SPEC 12: not the token's fault; no challenge, retry shortly.
        let body = serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": format!("the database does not answer; retry in {retry_after_secs} s"),
        });
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    let (scheme, status, code, description) = match e {
        BearerError::DpopInvalidToken(d) => ("DPoP", StatusCode::UNAUTHORIZED, Some("invalid_token"), d),
        BearerError::InvalidDpopProof(d) => ("DPoP", StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"), d),
        BearerError::Missing => {
            ("Bearer", StatusCode::UNAUTHORIZED, None, "a bearer access token is required".to_owned())
        }
        BearerError::InvalidToken(d) => ("Bearer", StatusCode::UNAUTHORIZED, Some("invalid_token"), d),
        BearerError::InsufficientScope(d) => ("Bearer", StatusCode::FORBIDDEN, Some("insufficient_scope"), d),
        BearerError::InvalidRequest(d) => ("Bearer", StatusCode::BAD_REQUEST, Some("invalid_request"), d),
        BearerError::Internal | BearerError::Unavailable { .. } => {
            ("Bearer", StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"), "internal error".to_owned())
        }
    };
    let challenge = match (scheme, code) {
        ("DPoP", Some(c)) => format!(
            "DPoP algs=\"{}\", error=\"{c}\", error_description=\"{}\"",
            dpop_algs(),
            description.replace('"', "'")
        ),
        (_, None) => "Bearer realm=\"tenure\"".to_owned(),
        (_, Some(c)) => {
            format!("Bearer realm=\"tenure\", error=\"{c}\", error_description=\"{}\"", description.replace('"', "'"))
        }
    };
    let body = serde_json::json!({ "error": code.unwrap_or("invalid_request"), "error_description": description });
    let mut response = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "not_found", "message": "no such endpoint" })))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ServiceError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = e.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.expect("body");
        (parts.status, parts.headers, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn oauth_refusals_keep_the_rfc_6749_shape() {
        let (status, headers, body) = answer(OAuthError::invalid_client("unknown client").into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, serde_json::json!({ "error": "invalid_client", "error_description": "unknown client" }));
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"tenure\"");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let busy = OAuthError::new(ErrorCode::Overloaded { retry_after_secs: 2 }, "busy");
        let (status, headers, _) = answer(busy.into()).await;
        assert_eq!(
            (status, &headers[header::RETRY_AFTER]),
            (StatusCode::SERVICE_UNAVAILABLE, &HeaderValue::from(2u64))
        );
    }

    #[tokio::test]
    async fn a_refresh_refused_for_an_ended_session_says_why() {
        let ended = OAuthError::session_ended(
            crate::session::end::EndReason::IdleTimeout,
            "the session ended after 30 minutes of inactivity",
        );
        let (status, _, body) = answer(ended.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({
                "error": "invalid_grant",
                "error_description": "the session ended after 30 minutes of inactivity",
                "session_end_reason": "idle_timeout",
            })
        );
    }

    #[tokio::test]
    async fn resource_refusals_carry_an_rfc_6750_challenge() {
        let (status, headers, body) =
            answer(ServiceError::Bearer(BearerError::InsufficientScope("needs openid".into()))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "insufficient_scope");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"tenure\", error=\"insufficient_scope\", error_description=\"needs openid\""
        );
    }

    #[tokio::test]
    async fn the_json_api_answers_error_and_message() {
        let (status, headers, body) =
            answer(ServiceError::api_bearer(BearerError::InvalidToken("expired".into()))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, serde_json::json!({ "error": "invalid_token", "message": "expired" }));
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"tenure\", error=\"invalid_token\"");
        let (status, _, body) = answer(ServiceError::Conflict("taken".into())).await;
        assert_eq!(
            (status, body),
            (StatusCode::CONFLICT, serde_json::json!({ "error": "conflict", "message": "taken" }))
        );
        let (status, headers, body) = answer(ServiceError::internal_in("writing a user", "disk full")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "the server could not complete the request (writing a user)");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    }
}
