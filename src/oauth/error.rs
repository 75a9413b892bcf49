//! OAuth errors with their RFC codes (RFC 6749 5.2, RFC 7009 2.2.1,
//! RFC 8693 2.2.2, RFC 8707 2, RFC 8628 3.5). Turned into HTTP responses in one place:
//! `http::error`.

use std::borrow::Cow;

use crate::session::end::EndReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 5.2.
    InvalidRequest,
    /// RFC 6749 5.2: client authentication failed (HTTP 401).
    InvalidClient,
    /// RFC 6749 5.2.
    InvalidGrant,
    /// RFC 6749 5.2.
    UnauthorizedClient,
    /// RFC 6749 5.2.
    UnsupportedGrantType,
    /// RFC 6749 5.2.
    InvalidScope,
    /// RFC 8707 2 / RFC 8693 2.2.2.
    InvalidTarget,
    /// RFC 7009 2.2.1.
    UnsupportedTokenType,
    /// Too many failed attempts; the client should retry after a while.
    TemporarilyUnavailable { retry_after_secs: u64 },
    /// Every password-hashing slot stayed busy, or the database does not
    /// answer (SPEC 12): HTTP 503 with Retry-After.
    Overloaded { retry_after_secs: u64 },
    /// RFC 9449 5, 7.1: the DPoP proof is missing, malformed or wrong.
    InvalidDpopProof,
    /// RFC 9449 8: the proof must carry the server's nonce (`DPoP-Nonce`).
    UseDpopNonce,
    /// The body exceeds the size limit (HTTP 413).
    RequestTooLarge,
    /// RFC 8628 3.5: the person has not answered yet; poll again.
    AuthorizationPending,
    /// RFC 8628 3.5: polling too fast; the interval grows by 5 s.
    SlowDown,
    /// RFC 8628 3.5: the person denied the request.
    AccessDenied,
    /// RFC 8628 3.5: the device code expired; start again.
    ExpiredToken,
    /// An internal failure; details go to the log, never to the client.
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::RequestTooLarge => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::TemporarilyUnavailable { .. } | ErrorCode::Overloaded { .. } => "temporarily_unavailable",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// An OAuth error response: the code and a description for the developer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// SPEC 14: a refresh refused because its session ended says why, as
    /// the extra member `session_end_reason` of the RFC 6749 5.2 body.
    pub end_reason: Option<EndReason>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError { code, description: description.into(), end_reason: None }
    }

    /// `invalid_grant` for a session that ended: `description` is a sentence
    /// an app can show its user, `reason` the SPEC 14 code.
    pub fn session_ended(reason: EndReason, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError { end_reason: Some(reason), ..Self::new(ErrorCode::InvalidGrant, description) }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request")
    }
}

pub type Result<T> = std::result::Result<T, OAuthError>;
