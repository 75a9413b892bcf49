//! One documentation stub per route and method of `super::super::router`
//! (the handlers stay readable without the annotations). Each stub's doc
//! comment is its operation's summary (first line) and description.

#![allow(dead_code)]

use super::responses::{
    ApiConflict, ApiForbidden, ApiInvalid, ApiNotFound, ApiServerError, ApiUnauthorized, CorsPreflight,
    OAuthBadRequest, OAuthInvalidClient, OAuthServerError, OAuthThrottled, PayloadTooLarge,
};
use super::schemas::{
    AuthorizationRequest, BearerError, ClientList, ClientSecret, ClientSettings, ClientView, ClientWithSecret,
    DiscoveryMetadata, Introspection, Jwks, KeyList, LoginForm, LogoutRequest, SessionList, Settings, SettingsUpdate,
    SsfConfiguration, SsfPollRequest, SsfPollResponse, SsfStatus, SsfStream, SsfStreamRequest, SsfVerifyRequest,
    Status, TokenForm, TokenRequest, Unavailable, UserPatch, UserSessionList, Userinfo, UserinfoForm,
};
use crate::admin::audit::AuditPage;
use crate::admin::policy::{Explanation, Preview};
use crate::admin::users::{NewUser, UserPage, UserView};
use crate::oauth::tokens::TokenResponse;

// ---- discovery ----

/// OpenID Provider metadata (OIDC Discovery 1.0 section 3)
///
/// Cached for 60 seconds (`Cache-Control: public, max-age=60`); readable
/// from any origin.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery", operation_id = "openidConfiguration",
    responses((status = 200, description = "The metadata.", body = DiscoveryMetadata)))]
fn openid_configuration() {}

/// CORS preflight (the metadata is readable from any origin)
#[utoipa::path(options, path = "/.well-known/openid-configuration", tag = "discovery",
    operation_id = "openidConfigurationCorsPreflight", responses((status = 204, response = CorsPreflight)))]
fn openid_configuration_preflight() {}

/// Authorization server metadata (RFC 8414 section 3)
///
/// The same document as `/.well-known/openid-configuration`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    operation_id = "oauthAuthorizationServerMetadata",
    responses((status = 200, description = "The metadata.", body = DiscoveryMetadata)))]
fn oauth_authorization_server() {}

/// CORS preflight (the metadata is readable from any origin)
#[utoipa::path(options, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    operation_id = "oauthAuthorizationServerCorsPreflight", responses((status = 204, response = CorsPreflight)))]
fn oauth_authorization_server_preflight() {}

/// The public signing keys (RFC 7517 section 5)
///
/// Every published key: the next key (published ahead of signing), the
/// active ones and the retired ones whose tokens may still be live. Cached
/// for 60 seconds; clients re-fetch on an unknown `kid`.
#[utoipa::path(get, path = "/jwks.json", tag = "discovery", operation_id = "jwks",
    responses((status = 200, description = "The key set.", body = Jwks, content_type = "application/jwk-set+json")))]
fn jwks() {}

/// CORS preflight (the key set is readable from any origin)
#[utoipa::path(options, path = "/jwks.json", tag = "discovery", operation_id = "jwksCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn jwks_preflight() {}

/// The OpenAPI document of this API
///
/// This document, generated from the code (`docs/openapi.yaml` is the
/// same, committed).
#[utoipa::path(get, path = "/openapi.json", tag = "discovery", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
fn openapi() {}

// ---- authorization (HTML) ----

/// Authorization request of the code flow
///
/// Shows the sign-in page when there is no live session (or with
/// `prompt=login`, or when the session is older than `max_age`), else
/// redirects to the client with a code. An error that cannot be sent to a
/// trusted redirect URI (unknown client, bad `redirect_uri`) is an HTML
/// error page.
#[utoipa::path(get, path = "/authorize", tag = "authorization", operation_id = "authorize",
    params(AuthorizationRequest),
    responses(
        (status = 200, description = "The sign-in page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 302, description = "Redirect to the client's redirect URI with `code`, `state` and `iss`, or with `error`, `error_description`, `state` and `iss`."),
        (status = 400, description = "An HTML error page: the client or redirect URI cannot be trusted.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn authorize() {}

/// Authorization request of the code flow, as a form body
#[utoipa::path(post, path = "/authorize", tag = "authorization", operation_id = "authorizePost",
    request_body(content = AuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The sign-in page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 302, description = "Redirect to the client with a code or an error."),
        (status = 400, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, response = PayloadTooLarge),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn authorize_post() {}

/// Sign-in form submission
///
/// Checks the CSRF token and the password, starts the session (its cookie)
/// and continues the authorization request.
#[utoipa::path(post, path = "/login", tag = "authorization", operation_id = "login",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: on to the authorization request (`/authorize`)."),
        (status = 400, description = "An HTML error page: a bad CSRF token or form.", content_type = "text/html; charset=utf-8", body = String),
        (status = 401, description = "The sign-in page again: wrong username or password.", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, response = PayloadTooLarge),
        (status = 429, description = "The sign-in page: too many failed sign-ins; `Retry-After`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "An HTML error page: the store does not answer.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn login() {}

// ---- token ----

/// Token endpoint (RFC 6749 3.2)
///
/// The `authorization_code`, `refresh_token`, `client_credentials` and
/// token exchange (RFC 8693) grants. Answers have `Cache-Control: no-store`;
/// every answer to a DPoP request carries a fresh `DPoP-Nonce`
/// (RFC 9449 8).
#[utoipa::path(post, path = "/token", tag = "token", operation_id = "token",
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 4) binding the tokens to its key.")),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "The tokens.", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`."),
                    ("DPoP-Nonce" = String, description = "To DPoP requests: the nonce to put in the next proof."))),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = OAuthInvalidClient),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = OAuthThrottled),
        (status = 500, response = OAuthServerError),
        (status = 503, response = OAuthServerError),
    ))]
fn token() {}

/// CORS preflight for the token endpoint
#[utoipa::path(options, path = "/token", tag = "token", operation_id = "tokenCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn token_preflight() {}

// ---- userinfo ----

/// Claims of the signed-in user (OIDC Core 5.3)
///
/// The access token needs the `openid` scope; `profile` and `email` add
/// their claims. A DPoP-bound token needs the `DPoP` scheme and a proof.
#[utoipa::path(get, path = "/userinfo", tag = "userinfo", operation_id = "userinfoGet",
    params(("DPoP" = Option<String>, Header, description = "With a DPoP-bound token: the proof, with `ath`.")),
    security(("bearerAuth" = []), ("dpopAuth" = [])),
    responses(
        (status = 200, description = "The claims.", body = Userinfo),
        (status = 400, description = "`invalid_request`.", body = BearerError),
        (status = 401, description = "`invalid_token`, with `WWW-Authenticate`.", body = BearerError),
        (status = 403, description = "`insufficient_scope`: no `openid` scope.", body = BearerError),
        (status = 500, description = "`server_error`.", body = BearerError),
    ))]
fn userinfo_get() {}

/// Claims of the signed-in user (OIDC Core 5.3), POST form
///
/// The token in the `Authorization` header or, for `Bearer`, as
/// `access_token` in the form body (RFC 6750 2.2).
#[utoipa::path(post, path = "/userinfo", tag = "userinfo", operation_id = "userinfoPost",
    params(("DPoP" = Option<String>, Header, description = "With a DPoP-bound token: the proof, with `ath`.")),
    request_body(content = UserinfoForm, content_type = "application/x-www-form-urlencoded"),
    security(("bearerAuth" = []), ("dpopAuth" = []), ()),
    responses(
        (status = 200, description = "The claims.", body = Userinfo),
        (status = 400, description = "`invalid_request`.", body = BearerError),
        (status = 401, description = "`invalid_token`, with `WWW-Authenticate`.", body = BearerError),
        (status = 403, description = "`insufficient_scope`: no `openid` scope.", body = BearerError),
        (status = 500, description = "`server_error`.", body = BearerError),
    ))]
fn userinfo_post() {}

/// CORS preflight for the userinfo endpoint
#[utoipa::path(options, path = "/userinfo", tag = "userinfo", operation_id = "userinfoCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn userinfo_preflight() {}

// ---- revocation and introspection ----

/// Token revocation (RFC 7009)
///
/// Revoking a refresh token revokes its whole family; revoking an access
/// token revokes it. An unknown or foreign token is answered 200 too.
#[utoipa::path(post, path = "/revoke", tag = "revocation", operation_id = "revoke",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke; empty body."),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = OAuthInvalidClient),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = OAuthThrottled),
        (status = 500, response = OAuthServerError),
        (status = 503, response = OAuthServerError),
    ))]
fn revoke() {}

/// CORS preflight for the revocation endpoint
#[utoipa::path(options, path = "/revoke", tag = "revocation", operation_id = "revokeCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn revoke_preflight() {}

/// Token introspection (RFC 7662)
///
/// For confidential clients. A token is inactive the moment its family,
/// session or user is revoked, a deadline passes, or a policy change ends
/// its session; an inactive answer is only `{"active": false}`.
#[utoipa::path(post, path = "/introspect", tag = "introspection", operation_id = "introspect",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "Whether the token is active, and its claims when it is.", body = Introspection),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = OAuthInvalidClient),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = OAuthThrottled),
        (status = 500, response = OAuthServerError),
        (status = 503, response = OAuthServerError),
    ))]
fn introspect() {}

// ---- logout (HTML) ----

/// RP-Initiated Logout (OIDC RP-Initiated Logout 1.0)
///
/// Shows a confirmation page, or (with a valid `id_token_hint` of the
/// session) ends the session, sends the back-channel logouts and redirects
/// to `post_logout_redirect_uri`.
#[utoipa::path(get, path = "/logout", tag = "logout", operation_id = "logoutGet",
    params(LogoutRequest),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 303, description = "Signed out: to `post_logout_redirect_uri` (with `state`)."),
        (status = 400, description = "An HTML error page: a bad hint or redirect URI.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn logout_get() {}

/// RP-Initiated Logout, as a form body, or the confirmation form
#[utoipa::path(post, path = "/logout", tag = "logout", operation_id = "logoutPost",
    request_body(content = LogoutRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The confirmation page, or the signed-out page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 303, description = "Signed out: to `post_logout_redirect_uri` (with `state`)."),
        (status = 400, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, response = PayloadTooLarge),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn logout_post() {}

// ---- account ----

/// The caller's live sessions, newest sign-in first
#[utoipa::path(get, path = "/account/sessions", tag = "account", operation_id = "listOwnSessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The sessions; `current` marks the caller's own.", body = SessionList),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_own_sessions() {}

/// Sign out everywhere
///
/// Every session of the caller, this one included.
#[utoipa::path(delete, path = "/account/sessions", tag = "account", operation_id = "revokeOwnSessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_own_sessions() {}

/// Revoke one of the caller's sessions
///
/// Idempotent; 404 for an unknown sid or someone else's.
#[utoipa::path(delete, path = "/account/sessions/{sid}", tag = "account", operation_id = "revokeOwnSession",
    params(("sid" = String, Path, description = "The session id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_own_session() {}

// ---- admin: settings ----

/// The effective session policy and each value's source
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/settings/session", tag = "admin", operation_id = "getSessionSettings",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The policy.", body = Settings),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn get_session_settings() {}

/// Set admin values of the session policy
///
/// Needs `system:administer`. A change applies to live sessions at once:
/// a shortened limit can end sessions now (see the preview).
#[utoipa::path(put, path = "/admin/settings/session", tag = "admin", operation_id = "putSessionSettings",
    request_body(content = SettingsUpdate),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new policy.", body = Settings),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn put_session_settings() {}

/// Drop every admin value (back to file and environment)
#[utoipa::path(delete, path = "/admin/settings/session", tag = "admin", operation_id = "resetSessionSettings",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The policy without admin values.", body = Settings),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn reset_session_settings() {}

/// The effective limits for a client, a user and "Remember me", each with the rule that decided it
#[utoipa::path(get, path = "/admin/settings/session/explain", tag = "admin", operation_id = "explainSessionSettings",
    params(
        ("client_id" = Option<String>, Query, description = "A client whose `session` override applies."),
        ("username" = Option<String>, Query, description = "A user (must exist)."),
        ("remember_me" = Option<bool>, Query, description = "`true` or `false` (default)."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The limits and why.", body = Explanation),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn explain_session_settings() {}

/// What a change of the session policy would do to the live sessions; nothing changes
///
/// The body a PUT takes, refused the same way.
#[utoipa::path(post, path = "/admin/settings/session/preview", tag = "admin", operation_id = "previewSessionSettings",
    request_body(content = SettingsUpdate),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The counts of sessions ending now, shortened, unchanged and extended.", body = Preview),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn preview_session_settings() {}

// ---- admin: users ----

/// Users from the config file and the admin API, sorted by username, 50 a page
///
/// Needs `users:edit`.
#[utoipa::path(get, path = "/admin/users", tag = "admin", operation_id = "listUsers",
    params(
        ("query" = Option<String>, Query, description = "Keep users whose username, name or email contains it (case-insensitive)."),
        ("page" = Option<u64>, Query, description = "From 1 (default)."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "One page of users.", body = UserPage),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_users() {}

/// Create a user kept in the store
///
/// Needs `users:edit`; giving `permissions` needs `system:administer`.
#[utoipa::path(post, path = "/admin/users", tag = "admin", operation_id = "createUser",
    request_body(content = NewUser),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created.", body = UserView),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn create_user() {}

/// One user, config or admin, disabled or not
#[utoipa::path(get, path = "/admin/users/{username}", tag = "admin", operation_id = "showUser",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn show_user() {}

/// Change an admin user; disabling revokes every session in the same write
#[utoipa::path(patch, path = "/admin/users/{username}", tag = "admin", operation_id = "updateUser",
    params(("username" = String, Path)),
    request_body(content = UserPatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The changed user.", body = UserView),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn update_user() {}

/// Delete an admin user; every session is revoked in the same write
#[utoipa::path(delete, path = "/admin/users/{username}", tag = "admin", operation_id = "deleteUser",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn delete_user() {}

// ---- admin: clients ----

/// Every client, from the config file and the admin API
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/clients", tag = "admin", operation_id = "listClients",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The clients.", body = ClientList),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_clients() {}

/// Register a client
#[utoipa::path(post, path = "/admin/clients", tag = "admin", operation_id = "createClient",
    request_body(content = ClientSettings),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created; a confidential client's secret is shown this once.", body = ClientWithSecret),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn create_client() {}

/// One client's settings, never a secret
#[utoipa::path(get, path = "/admin/clients/{id}", tag = "admin", operation_id = "showClient",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The client.", body = ClientView),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn show_client() {}

/// Replace every setting of an admin client
#[utoipa::path(put, path = "/admin/clients/{id}", tag = "admin", operation_id = "replaceClient",
    params(("id" = String, Path, description = "The client id.")),
    request_body(content = ClientSettings),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new settings.", body = ClientView),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn replace_client() {}

/// Delete an admin client after revoking its families
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin", operation_id = "deleteClient",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn delete_client() {}

/// A new generated secret for a confidential admin client, returned once
#[utoipa::path(post, path = "/admin/clients/{id}/secret", tag = "admin", operation_id = "rotateClientSecret",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new secret; the old one stops working.", body = ClientSecret),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn rotate_client_secret() {}

// ---- admin: keys ----

/// Every signing key in the manifest with its state and age, newest first
#[utoipa::path(get, path = "/admin/keys", tag = "admin", operation_id = "listKeys",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The keys.", body = KeyList),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_keys() {}

/// Generate the next signing key, published at once, signing after key_publish_ahead
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin", operation_id = "rotateKey",
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The keys, the new one first.", body = KeyList),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn rotate_key() {}

// ---- admin: sessions and audit ----

/// A user's live sessions, newest sign-in first
///
/// Needs `users:edit`.
#[utoipa::path(get, path = "/admin/users/{username}/sessions", tag = "admin", operation_id = "listUserSessions",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The sessions.", body = UserSessionList),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn list_user_sessions() {}

/// Revoke every session of a user, in one write whatever their number
///
/// Needs `users:edit`; `system:administer` when the user holds permissions.
#[utoipa::path(delete, path = "/admin/users/{username}/sessions", tag = "admin", operation_id = "revokeUserSessions",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_user_sessions() {}

/// Revoke one session
///
/// Idempotent; 404 when unknown. Needs `users:edit`; `system:administer`
/// when its user holds permissions.
#[utoipa::path(delete, path = "/admin/sessions/{sid}", tag = "admin", operation_id = "revokeSession",
    params(("sid" = String, Path, description = "The session id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_session() {}

/// The audit log, newest first, paged
///
/// Needs `users:edit`.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", operation_id = "listAudit",
    params(
        ("limit" = Option<u64>, Query, description = "Events a page."),
        ("before" = Option<String>, Query, description = "The `next` of the previous page."),
        ("kind" = Option<String>, Query, description = "Keep events of this kind."),
        ("user" = Option<String>, Query, description = "Keep events whose actor or target is this user."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "One page of events.", body = AuditPage),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_audit() {}

// ---- operations ----

/// The process answers
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Status)))]
fn healthz() {}

/// The store answers
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = Status),
        (status = 503, description = "The store does not answer.", body = Unavailable),
    ))]
fn readyz() {}

/// Prometheus metrics (OpenMetrics text format)
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
fn metrics() {}

// ---- feed (SSF) ----

/// The transmitter configuration (SSF 1.0 7.1)
#[utoipa::path(get, path = "/.well-known/ssf-configuration", tag = "feed", operation_id = "ssfConfiguration",
    responses((status = 200, description = "The configuration.", body = SsfConfiguration)))]
fn ssf_configuration() {}

/// The caller's stream, or without `stream_id` the list of its streams (none or one)
#[utoipa::path(get, path = "/ssf/stream", tag = "feed", operation_id = "getSsfStream",
    params(("stream_id" = Option<String>, Query)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The stream, or a list of streams.", body = SsfStream),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn get_ssf_stream() {}

/// Create the caller's stream
#[utoipa::path(post, path = "/ssf/stream", tag = "feed", operation_id = "createSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created.", body = SsfStream),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
    ))]
fn create_ssf_stream() {}

/// Change some of the stream's settings
#[utoipa::path(patch, path = "/ssf/stream", tag = "feed", operation_id = "patchSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The stream.", body = SsfStream),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn patch_ssf_stream() {}

/// Replace the stream's settings
#[utoipa::path(put, path = "/ssf/stream", tag = "feed", operation_id = "replaceSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The stream.", body = SsfStream),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn replace_ssf_stream() {}

/// Delete the stream; its queued events go
#[utoipa::path(delete, path = "/ssf/stream", tag = "feed", operation_id = "deleteSsfStream",
    params(("stream_id" = String, Query)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn delete_ssf_stream() {}

/// The stream's status
#[utoipa::path(get, path = "/ssf/status", tag = "feed", operation_id = "getSsfStatus",
    params(("stream_id" = Option<String>, Query)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The status.", body = SsfStatus),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn get_ssf_status() {}

/// Enable, pause (events are held) or disable (queued events are dropped, none queued)
#[utoipa::path(post, path = "/ssf/status", tag = "feed", operation_id = "setSsfStatus",
    request_body(content = SsfStatus),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new status.", body = SsfStatus),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn set_ssf_status() {}

/// Queue a verification event (SSF 1.0 8.1.4)
#[utoipa::path(post, path = "/ssf/verify", tag = "feed", operation_id = "verifySsfStream",
    request_body(content = SsfVerifyRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Queued."),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 429, description = "At most one verification request per stream every `min_verification_interval`; `Retry-After`.", body = super::schemas::ApiError),
    ))]
fn verify_ssf_stream() {}

/// Poll for Security Event Tokens (RFC 8936)
///
/// Acknowledges `ack`, then answers the queued SETs, waiting for one
/// unless `returnImmediately`.
#[utoipa::path(post, path = "/ssf/poll", tag = "feed", operation_id = "pollSsf",
    request_body(content = SsfPollRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The SETs by `jti`.", body = SsfPollResponse),
        (status = 400, response = ApiInvalid),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
    ))]
fn poll_ssf() {}
