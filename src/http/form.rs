//! Extractor for OAuth endpoint bodies: `application/x-www-form-urlencoded`,
//! at most 64 KiB (SPEC 4), parsed into [`Params`], with the caller's address
//! and `Authorization` header.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{Extensions, HeaderMap, header};

use super::AppState;
use crate::net::TrustedProxies;

use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::oauth::params::Params;

pub const BODY_LIMIT: usize = 64 * 1024;

pub struct OAuthForm {
    pub params: Params,
    pub authorization: Option<String>,
    /// The client's address ([`client_addr`]), for throttling.
    pub remote: String,
}

/// The client's address: the peer, or behind a trusted proxy the rightmost
/// untrusted `X-Forwarded-For` entry (see `crate::net`); "unknown" without
/// a socket (tests that drive the router directly).
pub fn client_addr(trusted: &TrustedProxies, headers: &HeaderMap, extensions: &Extensions) -> String {
    let Some(peer) = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
        return "unknown".to_owned();
    };
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    trusted.client_addr(peer, forwarded).to_string()
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
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
        let remote = client_addr(&state.config.trusted_proxies, req.headers(), req.extensions());
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await.map_err(|_| too_large())?;
        let params = Params::parse(&bytes)?;
        Ok(OAuthForm { params, authorization, remote })
    }
}
