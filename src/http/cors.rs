//! CORS (Fetch Standard, "CORS protocol") for the endpoints a browser
//! application calls (SPEC 1):
//!
//! - discovery and the JWKS are public: readable from any origin
//!   (`Access-Control-Allow-Origin: *`, never with credentials), so a library
//!   configured with nothing but the issuer URL can start;
//! - `/token`, `/revoke` and `/userinfo` (OIDC Core 5.3) answer the registered
//!   `web_origins` of public clients, looked up in the client registry at
//!   request time, so a client registered while the server runs is served at
//!   once. Any other origin gets no CORS header at all; the browser then
//!   refuses to hand the answer to the page. `/token` and `/userinfo` allow
//!   the `DPoP` request header and expose `DPoP-Nonce` (RFC 9449).
//!
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
//! here with `204` and never reaches the endpoint. Answers that depend on the
//! origin carry `Vary: Origin`, so a shared cache never serves one origin's
//! answer to another.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::service::AppState;

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Who may read an endpoint's answers from a browser, and how they may ask.
#[derive(Clone, Copy, Debug)]
pub struct CorsPolicy {
    pub origins: Origins,
    /// `Access-Control-Allow-Methods` of a preflight answer.
    pub methods: &'static str,
    /// `Access-Control-Allow-Headers` of a preflight answer.
    pub headers: &'static str,
    /// `Access-Control-Expose-Headers` of an answer, if any.
    pub expose: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origins {
    /// Public metadata: any origin, no credentials.
    Any,
    /// The `web_origins` of the registered public clients.
    ClientWebOrigins,
}

/// Discovery documents and the JWKS.
pub const PUBLIC_METADATA: CorsPolicy =
    CorsPolicy { origins: Origins::Any, methods: "GET", headers: "content-type", expose: None };

/// `/token`: form posts, optionally with Basic credentials and a DPoP
/// proof; the page may read the DPoP nonce (RFC 9449 8).
pub const TOKEN: CorsPolicy = CorsPolicy {
    origins: Origins::ClientWebOrigins,
    methods: "POST",
    headers: "content-type, authorization, dpop",
    expose: Some("dpop-nonce"),
};

/// `/revoke`: form posts, optionally with Basic credentials.
pub const CLIENT_POST: CorsPolicy = CorsPolicy {
    origins: Origins::ClientWebOrigins,
    methods: "POST",
    headers: "content-type, authorization",
    expose: None,
};

/// `/userinfo`: GET or POST with a bearer or DPoP token (and its proof); a
/// 401 explains itself in `WWW-Authenticate` (RFC 6750 3), which the page
/// may read, like `DPoP-Nonce`.
pub const USERINFO: CorsPolicy = CorsPolicy {
    origins: Origins::ClientWebOrigins,
    methods: "GET, POST",
    headers: "authorization, content-type, dpop",
    expose: Some("www-authenticate, dpop-nonce"),
};

/// The middleware: `middleware::from_fn_with_state((state, policy), cors)`.
pub async fn cors(State((state, policy)): State<(AppState, CorsPolicy)>, request: Request, next: Next) -> Response {
    let allowed = allowed_origin(&state, policy.origins, request.headers());
    let is_preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if allowed.is_some() {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(policy.methods));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(policy.headers));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(PREFLIGHT_MAX_AGE.as_secs()));
        }
        response
    } else {
        let mut response = next.run(request).await;
        if let (Some(_), Some(expose)) = (&allowed, policy.expose) {
            response.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(expose));
        }
        response
    };
    let headers = response.headers_mut();
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    if policy.origins == Origins::ClientWebOrigins {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The `Access-Control-Allow-Origin` value for this request, or `None` when
/// the request's origin may not read the answer (or it sent none).
fn allowed_origin(state: &AppState, origins: Origins, headers: &HeaderMap) -> Option<HeaderValue> {
    match origins {
        Origins::Any => Some(HeaderValue::from_static("*")),
        Origins::ClientWebOrigins => {
            let origin = headers.get(header::ORIGIN)?;
            let text = origin.to_str().ok()?;
            state.clients.allows_web_origin(text).then(|| origin.clone())
        }
    }
}
