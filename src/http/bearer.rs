//! Access tokens as requests present them (RFC 6750 2.1, 2.2; RFC 9449
//! 7.1): the `Authorization: Bearer|DPoP` header or the `access_token` form
//! parameter, and the `DPoP` proofs. Verification (signature, audience,
//! live family, DPoP binding) is [`crate::service::bearer`]; a DPoP-bound
//! token sent as a bearer token is refused everywhere, the admin and
//! account API included.

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};

pub use crate::service::BearerError;
use crate::service::{AppState, ServiceError, bearer};
use crate::token::claims::AccessClaims;

/// The verified claims of the request's bearer token.
pub struct Bearer(pub AccessClaims);

/// Verify a bearer `token` at the clock's `now` ([`bearer::authenticate`]).
pub async fn authenticate(state: &AppState, token: &str) -> Result<AccessClaims, BearerError> {
    bearer::authenticate(state, token, state.now()).await
}

/// How the access token was presented.
pub enum Presented {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer(String),
    /// `Authorization: DPoP <token>` (RFC 9449 7.1).
    Dpop(String),
}

/// The token of an `Authorization: Bearer` or `Authorization: DPoP` header.
pub fn presented(parts: &Parts) -> Result<Option<Presented>, BearerError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value =
        value.to_str().map_err(|_| BearerError::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidRequest(
            "the Authorization header has no token: Authorization: Bearer <token> or DPoP <token>".into(),
        ));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(Presented::Bearer(token.to_owned())))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Ok(Some(Presented::Dpop(token.to_owned())))
    } else {
        Err(BearerError::InvalidRequest(
            "use the Bearer or DPoP scheme: Authorization: Bearer <token> or DPoP <token>".into(),
        ))
    }
}

/// Authenticate the token of `parts`' Authorization header, either scheme.
pub async fn authenticate_parts(state: &AppState, parts: &Parts) -> Result<Option<AccessClaims>, BearerError> {
    match presented(parts)? {
        None => Ok(None),
        Some(Presented::Bearer(token)) => authenticate(state, &token).await.map(Some),
        Some(Presented::Dpop(token)) => {
            let proofs: Vec<&[u8]> = parts.headers.get_all("dpop").iter().map(HeaderValue::as_bytes).collect();
            let presented =
                bearer::DpopPresented { proofs: &proofs, method: parts.method.as_str(), endpoint: parts.uri.path() };
            bearer::authenticate_dpop(state, &token, presented, state.now()).await.map(Some)
        }
    }
}

/// The token of an `Authorization: Bearer` header, if any.
pub fn from_header(parts: &Parts) -> Result<Option<String>, BearerError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value =
        value.to_str().map_err(|_| BearerError::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(BearerError::InvalidRequest("use the Bearer scheme: Authorization: Bearer <access token>".into()));
    }
    Ok(Some(token.trim().to_owned()))
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer
where
    AppState: FromRef<S>,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = authenticate_parts(&AppState::from_ref(state), parts).await.map_err(ServiceError::Bearer)?;
        claims.ok_or(ServiceError::Bearer(BearerError::Missing)).map(Bearer)
    }
}

/// For POST endpoints that also accept the token in a form body
/// (RFC 6750 2.2): the header, or `access_token` in the body.
pub async fn from_header_or_form(state: &AppState, req: Request) -> Result<AccessClaims, BearerError> {
    let (parts, body) = req.into_parts();
    if let Some(claims) = authenticate_parts(state, &parts).await? {
        return Ok(claims);
    }
    // RFC 6750 2.2: the body parameter only in a form body. The media type
    // must be exactly the form type (parameters such as charset allowed),
    // not merely start with it.
    let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) else { return Err(BearerError::Missing) };
    let content_type = content_type.to_str().unwrap_or("");
    if !is_form_media_type(content_type) {
        return Err(BearerError::InvalidRequest(format!(
            "a token in the body needs Content-Type application/x-www-form-urlencoded, not {content_type:?}"
        )));
    }
    let bytes = axum::body::to_bytes(body, super::form::BODY_LIMIT)
        .await
        .map_err(|_| BearerError::InvalidRequest("the body exceeds 64 KiB".into()))?;
    let params = crate::oauth::params::Params::parse(&bytes)
        .map_err(|e| BearerError::InvalidRequest(e.description.into_owned()))?;
    match params.get("access_token") {
        Some(token) => authenticate(state, token).await,
        None => Err(BearerError::Missing),
    }
}

/// Whether `content_type` is `application/x-www-form-urlencoded`, with any
/// parameters (RFC 9110 8.3.1: the type and subtype are case-insensitive).
pub fn is_form_media_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

#[cfg(test)]
mod media_type_tests {
    use super::is_form_media_type;

    #[test]
    fn only_the_form_media_type_counts() {
        assert!(is_form_media_type("application/x-www-form-urlencoded"));
        assert!(is_form_media_type("application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(is_form_media_type("Application/X-WWW-Form-Urlencoded ;charset=utf-8"));
        assert!(!is_form_media_type("application/x-www-form-urlencodedx"));
        assert!(!is_form_media_type("application/x-www-form-urlencoded-evil; charset=utf-8"));
        assert!(!is_form_media_type("application/json"));
        assert!(!is_form_media_type(""));
    }
}
