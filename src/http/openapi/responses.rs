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
    /// `invalid_request` or `invalid_setting`: a malformed body, an unknown
    /// field or parameter, or a value out of range; the message names it.
    ApiInvalid,
    "ApiError"
);
error_response!(
    /// `unauthorized` (no token) or `invalid_token`, with
    /// `WWW-Authenticate: Bearer`.
    ApiUnauthorized,
    "ApiError"
);
error_response!(
    /// `forbidden` or `insufficient_scope`: the token lacks the permission
    /// or scope (checked before anything is looked up).
    ApiForbidden,
    "ApiError"
);
error_response!(
    /// `not_found`: no such user, client, session or stream.
    ApiNotFound,
    "ApiError"
);
error_response!(
    /// `conflict`: the target is read-only (declared in the config file, or
    /// built in), already exists, or is in the wrong state.
    ApiConflict,
    "ApiError"
);
error_response!(
    /// `server_error`: the store failed; details are in the log.
    ApiServerError,
    "ApiError"
);
error_response!(
    /// An OAuth error (RFC 6749 5.2): `invalid_request`, `invalid_grant`,
    /// `invalid_scope`, `unsupported_grant_type`, ... The body names what
    /// was wrong.
    OAuthBadRequest,
    "OAuthError"
);
error_response!(
    /// `invalid_client`: the client did not authenticate; with
    /// `WWW-Authenticate: Basic` when it tried HTTP Basic.
    OAuthInvalidClient,
    "OAuthError"
);
error_response!(
    /// `temporarily_unavailable`: too many failed client authentications
    /// from this address or for this client; `Retry-After` says when to
    /// try again.
    OAuthThrottled,
    "OAuthError"
);
error_response!(
    /// `server_error` (500) or `temporarily_unavailable` (503, the store
    /// does not answer).
    OAuthServerError,
    "OAuthError"
);

/// `413`: the body is larger than the limit; empty body.
pub struct PayloadTooLarge;

impl<'s> ToResponse<'s> for PayloadTooLarge {
    fn response() -> (&'s str, RefOr<Response>) {
        ("PayloadTooLarge", ResponseBuilder::new().description("The body is larger than the limit.").build().into())
    }
}

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
