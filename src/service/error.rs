//! The one error of the service layer: what a use case answers when it
//! refuses. `http/error.rs` turns it into a response, in one place: an
//! [`OAuthError`] into an RFC 6749 5.2 body, a [`BearerError`] into an
//! RFC 6750 3.1 challenge, every other variant into the JSON API's
//! `{"error","message"}`. Internal details are logged, never sent.

use crate::oauth::{ErrorCode, OAuthError};
use crate::store::StoreError;
use crate::token::keys::KeyError;

/// The `Retry-After` of an answer given while the database does not answer
/// (SPEC 12): the pool reconnects by itself, and every replica serves again
/// within 5 s of the database answering.
pub const DATABASE_RETRY_AFTER_SECS: u64 = crate::store::postgres::RETRY_AFTER_SECS;

/// Whether `err` is the store saying the database does not answer: the one
/// place the service floor tells an outage (a 503) from a failure (a 500),
/// whichever helper a use case passed its store error to.
fn database_down(err: &dyn std::any::Any) -> bool {
    matches!(err.downcast_ref::<StoreError>(), Some(StoreError::Unavailable(_)))
        || matches!(err.downcast_ref::<KeyError>(), Some(KeyError::DatabaseUnavailable { .. }))
}

/// A store failure on an OAuth endpoint (RFC 6749 5.2): the database not
/// answering is `temporarily_unavailable` (503 with `Retry-After`, SPEC
/// 12); anything else `server_error`, details in the log only.
pub fn oauth_store(context: &'static str, e: StoreError) -> OAuthError {
    if let StoreError::Unavailable(_) = &e {
        tracing::warn!(%context, error = %e, "the database does not answer");
        return OAuthError::new(
            ErrorCode::Overloaded { retry_after_secs: DATABASE_RETRY_AFTER_SECS },
            format!("the database does not answer; nothing was changed, retry in {DATABASE_RETRY_AFTER_SECS} s"),
        );
    }
    tracing::error!(%context, error = %e, "internal error");
    OAuthError::server_error()
}

/// A store failure on a resource endpoint (RFC 6750): the database not
/// answering is a 503 with `Retry-After`; anything else internal.
pub fn bearer_store(context: &'static str, e: StoreError) -> BearerError {
    if let StoreError::Unavailable(_) = &e {
        tracing::warn!(%context, error = %e, "the database does not answer");
        return BearerError::Unavailable { retry_after_secs: DATABASE_RETRY_AFTER_SECS };
    }
    tracing::error!(%context, error = %e, "internal error");
    BearerError::Internal
}

/// RFC 6750 3.1 (and RFC 9449 7.1) refusals of an access token presented to
/// one of tenure's resource endpoints.
#[derive(Debug)]
pub enum BearerError {
    /// No credentials: 401 with a bare challenge.
    Missing,
    /// 401 `invalid_token`.
    InvalidToken(String),
    /// 403 `insufficient_scope`.
    InsufficientScope(String),
    /// 400 `invalid_request`.
    InvalidRequest(String),
    /// RFC 9449 7.1: a DPoP-bound token sent as a bearer token, or a
    /// DPoP-scheme token that is not bound: 401 `invalid_token` with a DPoP
    /// challenge.
    DpopInvalidToken(String),
    /// RFC 9449 7.1: 401 `invalid_dpop_proof` with a DPoP challenge.
    InvalidDpopProof(String),
    /// The database does not answer (SPEC 12): 503 with `Retry-After`.
    Unavailable {
        retry_after_secs: u64,
    },
    Internal,
}

/// Why a use case refused; each message names what the caller got wrong.
#[derive(Debug)]
pub enum ServiceError {
    /// An OAuth endpoint's refusal (RFC 6749 5.2, RFC 7009, RFC 8693,
    /// RFC 9449): answered with its RFC code and description.
    OAuth(OAuthError),
    /// A resource endpoint's token was refused (RFC 6750 3.1):
    /// answered with a `WWW-Authenticate` challenge.
    Bearer(BearerError),
    /// The JSON API without a valid token (401 with a Bearer challenge);
    /// `invalid_token` when a token was sent but refused.
    Unauthenticated {
        invalid_token: bool,
        message: String,
    },
    /// Bad input (400 `invalid_request`).
    Invalid(String),
    /// A session setting breaks a rule of SPEC 3 (400 `invalid_setting`):
    /// `key` names the setting as data (its name in `policy::POLICY_KEYS`,
    /// as the admin API and the console's form name it), `message` the key
    /// and the rule.
    InvalidSetting {
        key: &'static str,
        message: String,
    },
    /// The body is not of the media type the endpoint reads (415).
    UnsupportedMediaType(String),
    /// A credential the caller gave is wrong (400 `invalid_grant`, as
    /// RFC 6749 5.2 names a wrong grant): the current password of
    /// `POST /account/password` (SPEC 14).
    InvalidGrant(String),
    /// The body exceeds the endpoint's limit (413).
    TooLarge(String),
    /// The caller may not do this (403 `forbidden`).
    Forbidden(String),
    /// The token lacks the scope this needs (403 `insufficient_scope`).
    InsufficientScope(String),
    NotFound(String),
    /// The thing exists in a form that cannot change, or the name is taken
    /// (409).
    Conflict(String),
    /// The caller asked too often (429 `too_many_requests`, with
    /// `Retry-After`).
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The server is busy; retry (503, with `Retry-After` when given).
    Unavailable {
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// A store or key failure (500); the context, when given, is named
    /// in the answer, the details are only in the log.
    Internal(Option<String>),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError::Invalid(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ServiceError::NotFound(message.into())
    }

    /// Log an internal failure of `context` (such as "reading users"); the
    /// answer names the context, never the details. A store that does not
    /// answer is a 503 instead ([`ServiceError::database_down`]).
    pub fn internal_in(context: &str, err: impl std::fmt::Display + 'static) -> Self {
        if database_down(&err) {
            return ServiceError::database_down(context, &err);
        }
        tracing::error!(%context, error = %err, "administration failed");
        ServiceError::Internal(Some(context.to_owned()))
    }

    /// A store failure: a value the store cannot hold is the caller's
    /// mistake (400); a database that does not answer is a 503 with
    /// `Retry-After` ([`ServiceError::database_down`]); anything else is
    /// internal.
    pub fn store(context: &str, e: StoreError) -> Self {
        match e {
            StoreError::Refused(_) => ServiceError::Invalid(
                "a value holds a character that cannot be stored (such as NUL); remove it and try again".into(),
            ),
            e => ServiceError::internal_in(context, e),
        }
    }

    /// SPEC 12: the database does not answer, so nothing was done (or a
    /// commit's outcome is unknown): 503, retry after
    /// [`DATABASE_RETRY_AFTER_SECS`]. Logged as a warning with `context`.
    pub fn database_down(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%context, error = %err, "the database does not answer");
        ServiceError::Unavailable {
            message: format!(
                "the database does not answer ({context}); nothing was changed, retry in {DATABASE_RETRY_AFTER_SECS} s"
            ),
            retry_after_secs: Some(DATABASE_RETRY_AFTER_SECS),
        }
    }

    /// Every hashing slot stayed busy: retry shortly (503).
    pub fn busy_hashing() -> Self {
        ServiceError::Unavailable {
            message: "the server is busy hashing other secrets; retry in 1 s".to_owned(),
            retry_after_secs: None,
        }
    }

    /// Log an internal failure; the answer says only that it failed. A
    /// store that does not answer is a 503 instead
    /// ([`ServiceError::database_down`]).
    pub fn internal(context: &'static str, err: impl std::fmt::Display + 'static) -> Self {
        if database_down(&err) {
            return ServiceError::database_down(context, &err);
        }
        tracing::error!(%context, error = %err, "internal error");
        ServiceError::Internal(None)
    }

    /// A bearer refusal as the JSON API answers it (`{"error","message"}`
    /// rather than the RFC 6750 body of the resource endpoints).
    pub fn api_bearer(e: BearerError) -> Self {
        match e {
            BearerError::Missing => ServiceError::Unauthenticated {
                invalid_token: false,
                message: "a bearer access token is required".to_owned(),
            },
            BearerError::InvalidToken(message)
            | BearerError::DpopInvalidToken(message)
            | BearerError::InvalidDpopProof(message) => ServiceError::Unauthenticated { invalid_token: true, message },
            BearerError::InsufficientScope(m) => ServiceError::Forbidden(m),
            BearerError::InvalidRequest(m) => ServiceError::Invalid(m),
            BearerError::Unavailable { .. } => ServiceError::database_down("bearer authentication", &"store failure"),
            BearerError::Internal => ServiceError::internal("bearer authentication", "store failure"),
        }
    }
}

impl From<OAuthError> for ServiceError {
    fn from(e: OAuthError) -> Self {
        ServiceError::OAuth(e)
    }
}
