//! Extractor for OAuth endpoint bodies: `application/x-www-form-urlencoded`,
//! at most 64 KiB (SPEC 4), parsed into [`Params`], with the caller's address
//! and `Authorization` header.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::header;

use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::oauth::params::Params;

pub const BODY_LIMIT: usize = 64 * 1024;

pub struct OAuthForm {
    pub params: Params,
    pub authorization: Option<String>,
    /// The peer address, for throttling; "unknown" without a socket (tests).
    pub remote: String,
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(if content_type.is_empty() {
                "the body must be application/x-www-form-urlencoded; no Content-Type was sent".to_owned()
            } else {
                format!("the body must be application/x-www-form-urlencoded, not {content_type:?}")
            }));
        }
        let declared_too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > BODY_LIMIT);
        let too_large =
            || OAuthError::new(ErrorCode::RequestTooLarge, format!("the body exceeds {} KiB", BODY_LIMIT / 1024));
        if declared_too_large {
            return Err(too_large());
        }
        let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
        let authorization = match authorization {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return Err(OAuthError::invalid_client("the Authorization header is not valid ASCII")),
        };
        let remote = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |ci| ci.0.ip().to_string());
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await.map_err(|_| too_large())?;
        let params = Params::parse(&bytes)?;
        Ok(OAuthForm { params, authorization, remote })
    }
}
