//! The one place where errors become HTTP responses.
//!
//! OAuth endpoints answer in the RFC 6749 5.2 shape
//! (`{"error","error_description"}`); internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::{ErrorCode, OAuthError};

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TemporarilyUnavailable { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = serde_json::json!({ "error": self.code.as_str(), "error_description": self.description });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match self.code {
            // RFC 6749 5.2: 401 with WWW-Authenticate for the scheme used.
            ErrorCode::InvalidClient => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tenure\""));
            }
            ErrorCode::TemporarilyUnavailable { retry_after_secs } | ErrorCode::Overloaded { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// Log an internal failure and answer `server_error` without details.
pub fn internal(context: &'static str, err: impl std::fmt::Display) -> OAuthError {
    tracing::error!(%context, error = %err, "internal error");
    OAuthError::server_error()
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "not_found", "message": "no such endpoint" })))
        .into_response()
}
