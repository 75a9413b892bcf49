//! Form bodies: the extractor for OAuth endpoint bodies
//! (`application/x-www-form-urlencoded`, at most 64 KiB (SPEC 4), parsed into
//! [`Params`], with the caller's address and `Authorization` header), and the
//! one reader of the HTML pages' forms: [`read_page_form`] for the sign-in
//! and logout forms, [`Form`] for the console's (names may repeat).

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRef, FromRequest, Request};
use axum::http::{Extensions, HeaderMap, header};

use super::pages::{Flow, PageError};
use crate::net::TrustedProxies;
use crate::service::{AppState, ServiceError};

use crate::oauth::OAuthError;
use crate::oauth::error::ErrorCode;
use crate::oauth::params::Params;

pub const BODY_LIMIT: usize = 64 * 1024;

pub struct OAuthForm {
    pub params: Params,
    pub authorization: Option<String>,
    /// The client's address ([`client_addr`]), for throttling.
    pub remote: String,
    /// The values of `DPoP` headers (RFC 9449 4.1), unchecked.
    pub dpop: Vec<axum::http::HeaderValue>,
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

impl<S: Send + Sync> FromRequest<S> for OAuthForm
where
    AppState: FromRef<S>,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        OAuthForm::read(req, &AppState::from_ref(state)).await.map_err(ServiceError::OAuth)
    }
}

impl OAuthForm {
    /// Read the form; refusals are RFC 6749 errors.
    async fn read(req: Request, state: &AppState) -> Result<Self, OAuthError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(if content_type.is_empty() {
                "the body must be application/x-www-form-urlencoded; no Content-Type was sent".to_owned()
            } else {
                format!("the body must be application/x-www-form-urlencoded, not {content_type:?}")
            }));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let too_large =
            || OAuthError::new(ErrorCode::RequestTooLarge, format!("the body exceeds {} KiB", BODY_LIMIT / 1024));
        if declared.is_some_and(|n| n > BODY_LIMIT) {
            // Read (and drop) a moderately oversized body before answering:
            // closing a socket with unread data makes the kernel reset it,
            // and the client would lose the 413. Huge bodies are not read.
            if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
                drain(req.into_body(), DRAIN_LIMIT).await;
            }
            return Err(too_large());
        }
        let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
        let authorization = match authorization {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return Err(OAuthError::invalid_client("the Authorization header is not valid ASCII")),
        };
        let remote = client_addr(&state.config.trusted_proxies, req.headers(), req.extensions());
        let dpop = req.headers().get_all("dpop").iter().cloned().collect();
        let mut body = req.into_body();
        let bytes = match read_limited(&mut body, BODY_LIMIT).await {
            Ok(bytes) => bytes,
            Err(()) => {
                drain(body, DRAIN_LIMIT).await;
                return Err(too_large());
            }
        };
        let params = Params::parse(&bytes)?;
        Ok(OAuthForm { params, authorization, remote, dpop })
    }
}

/// The body of a sign-in or logout form: `application/x-www-form-urlencoded`,
/// at most [`BODY_LIMIT`]; a refusal is `flow`'s error page.
pub async fn read_page_form(headers: &HeaderMap, body: Body, flow: Flow) -> Result<Bytes, PageError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(PageError::BadRequest(
            flow,
            "The form must be sent as application/x-www-form-urlencoded.".to_owned(),
        ));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(PageError::TooLarge(flow));
    }
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| PageError::TooLarge(flow))
}

/// A console form, in order; names may repeat (checkboxes).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(body: &Bytes) -> Form {
        Form(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
    pub fn confirmed(&self) -> bool {
        self.get("confirmed") == Some("1")
    }
    /// Every field but the CSRF token and the confirmation, to post again.
    pub fn to_repost(&self) -> Vec<(String, String)> {
        self.0.iter().filter(|(k, _)| k != "csrf" && k != "confirmed").cloned().collect()
    }
}

/// How much of an oversized body is read and dropped before the 413, so the
/// client receives the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The body, or `Err` once it exceeds `limit` (the rest stays unread).
async fn read_limited(body: &mut axum::body::Body, limit: usize) -> Result<Vec<u8>, ()> {
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Read and drop up to `cap` more bytes of `body` (bounded in time by the
/// server's request-body timeout).
async fn drain(mut body: axum::body::Body, cap: usize) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while seen <= cap {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}
