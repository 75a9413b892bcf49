//! The JSON admin and account API's plumbing (SPEC 4, 7): the caller's
//! verified token and permissions, and errors as `{"error", "message"}`.
//!
//! 401 without a valid token, 403 without the permission. `system:administer`
//! includes `users:edit`.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::bearer::{self, BearerError};
use super::state::AppState;
use crate::oauth::client::Permission;
use crate::token::claims::AccessClaims;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, error, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn internal(context: &'static str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the server could not complete the request")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.error, "message": self.message }))).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.error == "invalid_token" {
                "Bearer realm=\"tenure\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"tenure\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Missing => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a bearer access token is required")
            }
            BearerError::InvalidToken(m) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", m),
            BearerError::InsufficientScope(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            BearerError::InvalidRequest(m) => ApiError::bad_request(m),
            BearerError::Internal => ApiError::internal("bearer authentication", "store failure"),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::bad_request(format!("the body must be a JSON object: {}", e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

/// The authenticated caller of the admin or account API.
#[derive(Debug)]
pub struct Caller {
    pub claims: AccessClaims,
    pub permissions: BTreeSet<Permission>,
}

impl Caller {
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&Permission::SystemAdminister) || self.permissions.contains(&p)
    }

    /// 403 unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.has(p) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {} permission in the token's permissions claim", p.as_str()),
            ))
        }
    }

    /// The signed-in user, for user tokens (they carry a session).
    pub fn user(&self) -> Option<&str> {
        self.claims.sid.as_ref().map(|_| self.claims.sub.as_str())
    }

    /// Who to name in the audit log.
    pub fn actor(&self) -> String {
        match self.user() {
            Some(u) => u.to_owned(),
            None => format!("client:{}", self.claims.client_id),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer::from_header(parts)?.ok_or(BearerError::Missing)?;
        let claims = bearer::authenticate(state, &token)?;
        let permissions = claims.permissions.iter().flatten().filter_map(|p| Permission::parse(p)).collect();
        Ok(Caller { claims, permissions })
    }
}
