//! Answers many operations share, as `components.responses`.

use utoipa::ToResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};

fn json_error(description: &str, schema: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .header("Cache-Control", HeaderBuilder::new().description(Some("`no-store`.")).build())
        .content("application/json", Content::new(Some(Ref::from_schema_name(schema))))
        .build()
        .into()
}

macro_rules! error_response {
    ($(#[doc = $doc:literal])* $name:ident, $schema:literal) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), json_error(concat!($($doc, "\n"),*).trim(), $schema))
            }
        }
    };
}

error_response!(
    /// `invalid_request` (or `invalid_setting` for a session setting): a field
    /// breaks a rule (the message names it), an unknown field or a value of
    /// the wrong type, a body that is not a JSON object, or a malformed
    /// path, query or `Authorization` header.
    ApiBadRequest,
    "ApiError"
);
error_response!(
    /// No valid bearer token: `unauthorized` when none was sent,
    /// `invalid_token` when it is not a live access token of tenure addressed
    /// to the issuer (bad signature or type, expired, another audience such
    /// as an exchanged token, or its session or family was revoked or has
    /// ended).
    ApiUnauthorized,
    "ApiError"
);
error_response!(
    /// `forbidden`: the token's `permissions` claim lacks the permission
    /// (`system:administer` includes `users:edit`), a `users:edit` caller
    /// gives or changes a user's `permissions`, or an account endpoint was
    /// called with a client-credentials token; `insufficient_scope` at the
    /// feed: the token lacks `ssf.read` or `ssf.manage`.
    ApiForbidden,
    "ApiError"
);
error_response!(
    /// `not_found`: an unknown session id, username, client id or stream.
    ApiNotFound,
    "ApiError"
);
error_response!(
    /// `conflict`: the user or client is declared in the config file (or
    /// built in) and is read-only through the API, it exists already, or the
    /// stream is in a state that refuses the request.
    ApiConflict,
    "ApiError"
);
error_response!(
    /// `server_error`: an internal failure (details only in the log).
    ApiServerError,
    "ApiError"
);
error_response!(
    /// The request is malformed or refused: `invalid_request`,
    /// `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`, `invalid_target`, `unsupported_token_type`, DPoP's
    /// `invalid_dpop_proof` and `use_dpop_nonce`; the description names what
    /// was wrong. A refresh refused because its session ended adds
    /// `session_end_reason` (SPEC 14) and a description an app can show.
    OAuthBadRequest,
    "OAuthError"
);
error_response!(
    /// `invalid_client`: client authentication failed or was missing (unknown
    /// client or wrong secret, a secret sent by a public client, no secret
    /// from a confidential client, an `Authorization` header that is not
    /// Basic, not base64 of `id:secret`, or not ASCII).
    InvalidClient,
    "OAuthError"
);
error_response!(
    /// The body exceeds 64 KiB. The error code is `invalid_request`.
    RequestTooLarge,
    "OAuthError"
);
error_response!(
    /// `temporarily_unavailable`: too many failed client authentications for
    /// this `client_id` from this address (10 within 5 minutes).
    TemporarilyUnavailable,
    "OAuthError"
);
error_response!(
    /// `temporarily_unavailable`: every password-hashing slot stayed busy for
    /// `hashing_wait` (`Retry-After: 1`), or, with PostgreSQL, the database
    /// does not answer (`Retry-After: 2`; nothing was changed); retry after
    /// `Retry-After`.
    HashingBusy,
    "OAuthError"
);
error_response!(
    /// `server_error`: an internal failure; the description is always "the
    /// server could not complete the request", details only in the log.
    OAuthServerError,
    "OAuthError"
);

/// The answer to a CORS preflight: `204`, empty, with the
/// `Access-Control-Allow-*` headers when the origin is allowed.
pub struct CorsPreflight;

impl<'s> ToResponse<'s> for CorsPreflight {
    fn response() -> (&'s str, RefOr<Response>) {
        let header = |d: &str| HeaderBuilder::new().description(Some(d.to_owned())).build();
        let response = ResponseBuilder::new()
            .description(
                "Preflight answer, empty body. Public metadata allows any origin; the token, revocation and \
                 userinfo endpoints allow the `web_origins` of the registered clients.",
            )
            .header("Access-Control-Allow-Origin", header("The origin (or `*` for public metadata)."))
            .header("Access-Control-Allow-Methods", header("The methods of the route."))
            .header("Access-Control-Allow-Headers", header("The request headers the route takes."))
            .header("Access-Control-Max-Age", header("`600`."))
            .build();
        ("CorsPreflight", response.into())
    }
}
