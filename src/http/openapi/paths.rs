//! One documentation stub per route and method of [`crate::http::router`]
//! (the handlers stay readable without the annotations). Each stub's doc
//! comment is its operation's summary (first line) and description; the
//! unit tests in `super` fail when a route has no stub.

// The stubs are never called: only their `#[utoipa::path]` is read.
#![allow(dead_code)]

use super::responses::{
    ApiBadRequest, ApiConflict, ApiForbidden, ApiNotFound, ApiServerError, ApiUnauthorized, CorsPreflight, HashingBusy,
    InvalidClient, OAuthBadRequest, OAuthServerError, RequestTooLarge, TemporarilyUnavailable,
};
use super::schemas::{
    AuthorizationRequest, BearerError, ClientList, ClientSecret, ClientSettings, ClientView, ClientWithSecret,
    DeviceAuthorizationForm, DeviceCodeForm, DeviceDecisionForm, DiscoveryMetadata, GroupList, GroupPreviewRequest,
    GroupUpdate, Introspection, Jwks, KeyList, LoginForm, LogoutRequest, PasswordChange, Ready, SessionLimitForm,
    SessionList, Settings, SettingsUpdate, SsfConfiguration, SsfPollRequest, SsfPollResponse, SsfStatus, SsfStream,
    SsfStreamRequest, SsfVerifyRequest, Status, TokenForm, TokenRequest, Unavailable, UserPatch, UserSessionList,
    Userinfo, UserinfoForm,
};
use crate::oauth::tokens::TokenResponse;
use crate::service::audit::AuditPage;
use crate::service::device::DeviceAuthorization;
use crate::service::explain::{Explanation, Preview};
use crate::service::groups::GroupView;
use crate::service::users::{NewUser, UserPage, UserView};

// ---- discovery ----

/// OpenID Provider metadata (OIDC Discovery 1.0 section 3)
///
/// Only what is implemented is advertised.
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
/// The active signing key first, then the others newest first: the RS256 companion key for ID
/// tokens (when `signing_alg` is not RS256), next keys published ahead of their first use
/// (`key_publish_ahead`), and retired keys that may still have signed a live token (a retired key
/// stays published for `max(access_token_ttl, 2 min) + 5 min`). A revoked key is removed at once.
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
/// Validation has two stages (RFC 6749 4.1.2.1). Until the client and its redirect URI are
/// established (`client_id` known and allowed `authorization_code`; `redirect_uri` registered, or
/// omitted with exactly one registered), errors are shown as a `400` HTML page and never
/// redirected. After that, errors are redirected (`302`) to the redirect URI with `error`,
/// `error_description`, `state` (when sent) and `iss`. Each parameter may appear at most once (a
/// duplicate is a `400` page); an empty value counts as absent. The same request may be sent as a
/// form body with `POST /authorize`.
///
/// With a live user session (the `tenure_session` cookie) that satisfies `max_age`, and without
/// `prompt=login`, a code is issued at once (single sign-on): `302` to the redirect URI with
/// `code`, `state` and `iss`. A code is valid for 60 s, once. Otherwise the sign-in page is shown
/// (`200`), or with `prompt=none` the client gets `login_required`.
#[utoipa::path(get, path = "/authorize", tag = "authorization", operation_id = "authorize",
    params(AuthorizationRequest, ("tenure_session" = Option<String>, Cookie, description = "The user session, set at sign-in (`__Host-tenure_session` on an https issuer)."), ("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie, set with the sign-in and confirmation pages (`__Host-tenure_csrf` on an https issuer).")),
    responses(
        (status = 200, description = "The sign-in page: an HTML form (`method=\"post\"`, `action=\"/login\"`) with inputs `username`, `password`, checkbox `remember_me` (value `on`), and hidden `csrf_token` and `return_to`. Shown when there is no live session, with `prompt=login`, or when the session is older than `max_age`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 302, description = "Redirect to the client's redirect URI (its own query kept, RFC 6749 3.1.2), either with the authorization response (`code`, `state`, `iss`) or with an error (`error`, `error_description`, `state`, `iss`)."),
        (status = 400, description = "An HTML error page with a heading and a message: the client or its redirect URI is not established.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn authorize() {}

/// Authorization request of the code flow, as a form body
///
/// The same request as `GET /authorize`, with the parameters in an
/// `application/x-www-form-urlencoded` body of at most 64 KiB (OIDC Core 3.1.2.1); the query string
/// of the request is not read. Validation, cookies and answers are those of GET; the sign-in page's
/// `return_to` is the body.
#[utoipa::path(post, path = "/authorize", tag = "authorization", operation_id = "authorizePost",
    params(("tenure_session" = Option<String>, Cookie, description = "The user session, set at sign-in (`__Host-tenure_session` on an https issuer)."), ("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie, set with the sign-in and confirmation pages (`__Host-tenure_csrf` on an https issuer).")),
    request_body(content = AuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The sign-in page: an HTML form (`method=\"post\"`, `action=\"/login\"`) with inputs `username`, `password`, checkbox `remember_me` (value `on`), and hidden `csrf_token` and `return_to`. Shown when there is no live session, with `prompt=login`, or when the session is older than `max_age`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 302, description = "Redirect to the client's redirect URI (its own query kept, RFC 6749 3.1.2), either with the authorization response (`code`, `state`, `iss`) or with an error (`error`, `error_description`, `state`, `iss`)."),
        (status = 400, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, description = "The body exceeds 64 KiB: an HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn authorize_post() {}

/// Sign-in form submission
///
/// Posted by the sign-in page. The CSRF token must be the HMAC of the browser's `tenure_csrf`
/// cookie. On success a user session starts, the `tenure_session` cookie is set and the browser is
/// sent (`303`) to our own `/authorize` with the original request (`return_to`) minus
/// `prompt=login` and `max_age`, which the sign-in has satisfied. A live session the browser still
/// carried is ended (reason `replaced_by_new_sign_in`) and a fresh `tenure_csrf` cookie is set.
/// Attempts are counted before the password is checked, per username and client address (5 failures
/// within 5 minutes) and per address (20 failures); the lock lasts 5 minutes and doubles with each
/// repeat, up to an hour. The client address is the peer, or behind a `trusted_proxies` proxy the
/// rightmost untrusted `X-Forwarded-For` entry.
#[utoipa::path(post, path = "/login", tag = "authorization", operation_id = "login",
    params(("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie, set with the sign-in and confirmation pages (`__Host-tenure_csrf` on an https issuer).")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in; continue the authorization request."),
        (status = 400, description = "An HTML page (the sign-in form again, or an error page).", content_type = "text/html; charset=utf-8", body = String),
        (status = 401, description = "An HTML page (the sign-in form again, or an error page).", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, description = "The body exceeds 64 KiB: an HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 429, description = "Too many failed sign-ins for this username from this address, or from this address for any usernames: the sign-in form again, with a message naming the wait.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "Every password-hashing slot stayed busy: the sign-in form again, \"The server is busy signing in other people. Try again in a moment.\", with `Retry-After: 1`. Nothing was counted.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn login() {}

/// The choice on the "Too many sessions" page (SPEC 14)
///
/// Shown by `POST /login` (status 200) when the password was right, the user already has
/// `session.max_sessions` live sessions and `session.on_session_limit` is `ask`: the user's live
/// sessions (applications, device, address, last active), least recently active first. `action=end`
/// ends the chosen session (reason `session_limit`, with its back-channel logouts and feed events)
/// in the same store step that starts the new one; `action=cancel` starts nothing.
#[utoipa::path(post, path = "/login/session-limit", tag = "authorization", operation_id = "loginSessionLimit",
    params(("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie the pending sign-in is bound to.")),
    request_body(content = SessionLimitForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in (the session cookie is set): continue at `/authorize`; or, after `cancel`, back to the sign-in page."),
        (status = 400, description = "The CSRF check failed, or the pending sign-in is unknown, expired, used or another browser's: an HTML page \"This sign-in form has expired\".", content_type = "text/html; charset=utf-8", body = String),
        (status = 409, description = "The session chosen is not one of the user's live sessions (or none was chosen): the page again, with a new `pending`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn login_session_limit() {}

// ---- token ----

/// Token endpoint (RFC 6749 3.2)
///
/// The body is `application/x-www-form-urlencoded`, at most 64 KiB; any other content type is `400
/// invalid_request`, a larger body `413`. Each parameter may appear once (RFC 6749 3.2); an empty
/// value counts as absent. `grant_type` is checked first (missing: `invalid_request`; unknown:
/// `unsupported_grant_type`), then the client is authenticated, then the grant runs.
///
/// Client authentication: `client_secret_basic` (HTTP Basic with the form-urlencoded
/// `client_id:client_secret`), `client_secret_post` (`client_id` and `client_secret` in the body),
/// or `none` (`client_id` only) for public clients. Sending Basic credentials together with
/// `client_secret`, or a body `client_id` that differs from the Basic one, is `400
/// invalid_request`. Wrong or missing authentication is `401 invalid_client` with
/// `WWW-Authenticate: Basic realm="tenure"`. After 10 failed authentications for one `client_id`
/// from one address within 5 minutes, `429 temporarily_unavailable` with `Retry-After` until the
/// lock ends (5 minutes, doubling with each repeat up to an hour). When every password-hashing slot
/// stays busy, `503 temporarily_unavailable` with `Retry-After: 1`; while the database does not
/// answer (PostgreSQL), `503 temporarily_unavailable` with `Retry-After: 2` and nothing changed
/// (client credentials go on: they need no database).
///
/// CORS: browser calls are allowed from the `web_origins` of public clients, looked up on every
/// request (`Access-Control-Allow-Origin` echoes a registered `Origin`, on errors too; `Vary:
/// Origin`); any other origin gets no CORS header.
///
/// Grants: `authorization_code`, `refresh_token`, `client_credentials`,
/// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693; see `TokenExchangeGrant` and
/// docs/delegation.md) and `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 3.4: see
/// `POST /device_authorization`; the poll answers `authorization_pending`, `slow_down`,
/// `access_denied`, `expired_token`, `invalid_grant` once used, or the tokens).
///
/// DPoP (RFC 9449): with a `DPoP` proof header the access token is bound to the proof's key
/// (`cnf.jkt`, `token_type: DPoP`); a public client's code exchange binds its whole family, and
/// every later refresh of that family needs a proof of the same key (checked before anything
/// rotates, inside the grace window too). Every answer to a request with a `DPoP` header carries a
/// fresh `DPoP-Nonce`. See docs/api.md, "DPoP".
#[utoipa::path(post, path = "/token", tag = "token", operation_id = "token",
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 4) binding the tokens to its key.")),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "The tokens.", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store`."),
                    ("DPoP-Nonce" = String, description = "To DPoP requests: the nonce to put in the next proof."))),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = InvalidClient),
        (status = 413, response = RequestTooLarge),
        (status = 429, response = TemporarilyUnavailable),
        (status = 500, response = OAuthServerError),
        (status = 503, response = HashingBusy),
    ))]
fn token() {}

/// CORS preflight for the token endpoint
///
/// Answered by the CORS layer without reaching the endpoint. Origins: the `web_origins` of public
/// clients, nothing else; another origin gets `204` without any CORS header.
#[utoipa::path(options, path = "/token", tag = "token", operation_id = "tokenCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn token_preflight() {}

// ---- device authorization grant (RFC 8628, SPEC 15) ----

/// Device authorization request (RFC 8628 3.1)
///
/// A command-line tool or device starts the device authorization grant. The client authenticates
/// as at `/token` (`client_secret_basic`, `client_secret_post`, or `none` for a public client) and
/// must be allowed the grant type `urn:ietf:params:oauth:grant-type:device_code` (else `400
/// unauthorized_client`); `scope` is checked as at `/authorize` (the client's registered scopes
/// when omitted; anything else is `400 invalid_scope`). The answer names a `device_code` (256
/// random bits, stored only as its SHA-256), a `user_code` (8 letters of
/// `BCDFGHJKLMNPQRSTVWXZ`, shown `XXXX-XXXX`), where the person goes (`verification_uri`, and
/// `verification_uri_complete` with the code filled in: the person still confirms), `expires_in`
/// (`device_code_ttl`, default 600) and the polling `interval` (5). The tool then polls `POST
/// /token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code` and `device_code`:
/// `authorization_pending` until the person answers, `slow_down` when it polls sooner than the
/// interval (which then grows by 5 s, for good), `access_denied`, `expired_token`, or the tokens
/// once (`invalid_grant` afterwards).
#[utoipa::path(post, path = "/device_authorization", tag = "token", operation_id = "deviceAuthorization",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "The codes and where the person goes.", body = DeviceAuthorization,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = InvalidClient),
        (status = 413, response = RequestTooLarge),
        (status = 429, response = TemporarilyUnavailable),
        (status = 500, response = OAuthServerError),
        (status = 503, response = HashingBusy),
    ))]
fn device_authorization() {}

/// The device page (RFC 8628 3.3)
///
/// With a live session (the `tenure_session` cookie): a form to enter the user code, prefilled
/// from `user_code` (as in `verification_uri_complete`); nothing is approved by opening the link.
/// Without one: the sign-in form, posting to `/device/login`, which comes back here.
#[utoipa::path(get, path = "/device", tag = "authorization", operation_id = "devicePage",
    params(("user_code" = Option<String>, Query, description = "The user code to prefill (case, dashes and spaces ignored).")),
    responses(
        (status = 200, description = "The code form, or the sign-in form: HTML, no script; a `tenure_csrf` cookie is set when the browser has none.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn device_page() {}

/// Look up a user code
///
/// Needs a live session and the CSRF token. Wrong or malformed codes are counted like wrong
/// passwords, per session and per address (5 failures within 5 minutes lock the session's
/// attempts for 5 minutes, doubling up to an hour; the address limit is shared with sign-in).
#[utoipa::path(post, path = "/device", tag = "authorization", operation_id = "deviceEnter",
    params(("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie set with the page.")),
    request_body(content = DeviceCodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The confirmation page: the client's name, the code and the scopes, with Approve and Deny (or the sign-in form when the session ended).", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "Not a code on record (the form again, \"That code is not valid\"), or the CSRF check failed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "The code expired, was answered already, or was used: a page saying which.", content_type = "text/html; charset=utf-8", body = String),
        (status = 429, description = "Too many wrong codes from this session or address: a page naming the wait, with `Retry-After`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn device_enter() {}

/// Approve or deny a device
///
/// Needs a live session and the CSRF token. Approving binds the request to the person's session:
/// the family the tool's poll then starts belongs to it (it is listed with the session and ends
/// with it) and obeys the client's session override. Only an open request (pending, unexpired) is
/// answered, once.
#[utoipa::path(post, path = "/device/decision", tag = "authorization", operation_id = "deviceDecision",
    params(("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie set with the page.")),
    request_body(content = DeviceDecisionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "\"Device connected\" or \"Request denied\".", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "Not a code on record, no `action`, or the CSRF check failed.", content_type = "text/html; charset=utf-8", body = String),
        (status = 410, description = "The code expired, was answered already, or was used.", content_type = "text/html; charset=utf-8", body = String),
        (status = 429, description = "Too many wrong codes from this session or address, with `Retry-After`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn device_decision() {}

/// Sign in on the device page
///
/// The sign-in form of `/device`, with the checks and throttle of `POST /login` (`return_to` is
/// the user code typed so far). On success the session cookie and a fresh `tenure_csrf` cookie are
/// set and the browser goes back (`303`) to `/device`, with the code when it is one. Under a
/// session limit that asks, the least recently active session makes room (nobody is asked here).
#[utoipa::path(post, path = "/device/login", tag = "authorization", operation_id = "deviceLogin",
    params(("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie set with the page.")),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in; back to `/device`."),
        (status = 400, description = "The CSRF check failed or a field is missing: an HTML page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 401, description = "Wrong username or password: the form again.", content_type = "text/html; charset=utf-8", body = String),
        (status = 429, description = "Too many failed sign-ins: the form again, naming the wait, with `Retry-After`.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 503, description = "Every password-hashing slot stayed busy: the form again.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn device_login() {}

// ---- userinfo ----

/// Claims of the signed-in user (OIDC Core 5.3)
///
/// The access token must be one tenure signed (`typ: at+jwt`), addressed to the issuer, unexpired,
/// and still descend from a live family (its session, family and policy not ended or revoked). It
/// must carry the `openid` scope. Claims by scope: `sub` always; `preferred_username`, and `name`
/// when the user has one, with `profile`; `email`, when the user has one, with `email`.
///
/// CORS: browser calls are allowed from the `web_origins` of public clients, as at `/token`;
/// `WWW-Authenticate` is exposed to the page (`Access-Control-Expose-Headers`).
///
/// DPoP (RFC 9449 7.1): a DPoP-bound token (one with `cnf.jkt`) must come as `Authorization: DPoP
/// <token>` with a `DPoP` proof whose `htm` is the request method, `htu` this endpoint, `ath` the
/// base64url SHA-256 of the token, signed by the bound key (no nonce needed here). Sent as `Bearer`
/// it is refused: `401` with `WWW-Authenticate: DPoP ... error="invalid_token"`. A bad proof is
/// `401` with `WWW-Authenticate: DPoP ... error="invalid_dpop_proof"`.
#[utoipa::path(get, path = "/userinfo", tag = "userinfo", operation_id = "userinfoGet",
    params(("DPoP" = Option<String>, Header, description = "With a DPoP-bound token: the proof, with `ath`.")),
    security(("bearerAuth" = []), ("dpopAuth" = [])),
    responses(
        (status = 200, description = "The claims.", body = Userinfo),
        (status = 400, description = "`invalid_request`: a malformed `Authorization` header (not ASCII, not the Bearer scheme, or an empty token).", body = BearerError),
        (status = 401, description = "No token (bare challenge `Bearer realm=\"tenure\"`; the body says `invalid_request`, \"a bearer access token is required\"), or `invalid_token`: a bad signature, `typ`, issuer or audience, an expired token, a token whose family, session or policy has ended or was revoked, or a token that does not belong to an existing user (client-credentials tokens).", body = BearerError),
        (status = 403, description = "`insufficient_scope`: the token lacks the `openid` scope.", body = BearerError),
        (status = 500, description = "`server_error`: the store failed while checking the token.", body = BearerError),
    ))]
fn userinfo_get() {}

/// Claims of the signed-in user (OIDC Core 5.3), POST form
///
/// As GET. The token comes from `Authorization: Bearer` or, without that header, from
/// `access_token` in an `application/x-www-form-urlencoded` body (RFC 6750 2.2; at most 64 KiB).
/// With the header, the body is ignored. Without the header, a body whose media type is not exactly
/// `application/x-www-form-urlencoded` (parameters such as charset allowed) is `400
/// invalid_request`; no body and no header is `401`. A DPoP-bound token only as `Authorization:
/// DPoP` with a proof, as with GET.
#[utoipa::path(post, path = "/userinfo", tag = "userinfo", operation_id = "userinfoPost",
    params(("DPoP" = Option<String>, Header, description = "With a DPoP-bound token: the proof, with `ath`.")),
    request_body(content = UserinfoForm, content_type = "application/x-www-form-urlencoded"),
    security(("bearerAuth" = []), ("dpopAuth" = []), ()),
    responses(
        (status = 200, description = "The claims.", body = Userinfo),
        (status = 400, description = "`invalid_request`: a malformed `Authorization` header (not ASCII, not the Bearer scheme, or an empty token).", body = BearerError),
        (status = 401, description = "No token (bare challenge `Bearer realm=\"tenure\"`; the body says `invalid_request`, \"a bearer access token is required\"), or `invalid_token`: a bad signature, `typ`, issuer or audience, an expired token, a token whose family, session or policy has ended or was revoked, or a token that does not belong to an existing user (client-credentials tokens).", body = BearerError),
        (status = 403, description = "`insufficient_scope`: the token lacks the `openid` scope.", body = BearerError),
        (status = 500, description = "`server_error`: the store failed while checking the token.", body = BearerError),
    ))]
fn userinfo_post() {}

/// CORS preflight for the userinfo endpoint
///
/// Answered by the CORS layer without reaching the endpoint. Origins: the `web_origins` of public
/// clients; another origin gets `204` without any CORS header.
#[utoipa::path(options, path = "/userinfo", tag = "userinfo", operation_id = "userinfoCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn userinfo_preflight() {}

// ---- revocation and introspection ----

/// Token revocation (RFC 7009)
///
/// A client revokes one of its own tokens. Body and client authentication as at `/token`
/// (`client_secret_basic`, `client_secret_post`, or `none` with `client_id` for public clients; the
/// same throttling). CORS as at `/token`.
///
/// A refresh token (current or spent) or a user's access token kills its whole family: every
/// refresh token of the chain, every access and ID token minted from them, every token exchanged
/// from those. The session and the client's other families live on. The family's client gets a
/// back-channel logout token when it has a `backchannel_logout_uri`, and the audit log records
/// `family_revoked` (reason `revoked_by_client`). Only the client a token was issued to may revoke
/// it (an exchanged token belongs to the client that obtained it; revoking it kills the subject's
/// family). An unknown, malformed or expired token, or an already revoked family, answers `200`
/// (RFC 7009 2.2).
#[utoipa::path(post, path = "/revoke", tag = "revocation", operation_id = "revoke",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke; empty body."),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = InvalidClient),
        (status = 413, response = RequestTooLarge),
        (status = 429, response = TemporarilyUnavailable),
        (status = 500, response = OAuthServerError),
        (status = 503, response = HashingBusy),
    ))]
fn revoke() {}

/// CORS preflight for the revocation endpoint
///
/// Answered by the CORS layer, as for `/token`: origins are the `web_origins` of public clients,
/// method `POST`, headers `content-type` and `authorization`, max age 600 s.
#[utoipa::path(options, path = "/revoke", tag = "revocation", operation_id = "revokeCorsPreflight",
    responses((status = 204, response = CorsPreflight)))]
fn revoke_preflight() {}

/// Token introspection (RFC 7662)
///
/// Any authenticated confidential client (`client_secret_basic` or `client_secret_post`) may ask
/// about any token; a public client is `401 invalid_client`. No CORS.
///
/// A token is inactive when tenure did not issue it (or it is not an access or refresh token), an
/// access token has expired or its key is no longer published, a refresh token was spent by a
/// rotation (even within the grace window), its family, session or user was revoked (at once,
/// without waiting for `exp`), or its session's idle or absolute deadline has passed under the
/// policy in force now (a shortened policy ends older sessions; loosening never revives them). An
/// inactive answer is only `{"active": false}` (RFC 7662 2.2). Client-credentials access tokens are
/// active until their `exp`.
#[utoipa::path(post, path = "/introspect", tag = "introspection", operation_id = "introspect",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("clientSecretBasic" = []), ()),
    responses(
        (status = 200, description = "Whether the token is active, and its claims when it is.", body = Introspection),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = InvalidClient),
        (status = 413, response = RequestTooLarge),
        (status = 429, response = TemporarilyUnavailable),
        (status = 500, response = OAuthServerError),
        (status = 503, response = HashingBusy),
    ))]
fn introspect() {}

// ---- logout (HTML) ----

/// RP-Initiated Logout (OIDC RP-Initiated Logout 1.0)
///
/// Ends the user's session at tenure. Which session ends: with a valid `id_token_hint` naming the
/// browser's own session (the `tenure_session` cookie), that session, without asking; with a valid
/// hint and no session cookie, the session the hint names if it is still live and the hint's
/// user's; with a live session cookie and no hint (or a hint for another session), nothing until
/// the user confirms on a confirmation page (logout CSRF, section 6); with neither, nothing (GET)
/// or the confirmation page (POST).
///
/// Ending a session revokes it and every family in it (every token of the session dies at once),
/// queues back-channel logout tokens for every client with a family in it, and records
/// `session_revoked` with reason `logout`. Then `303` to the registered `post_logout_redirect_uri`
/// (with `state`), or `200` with a "You are signed out" page; both clear the session cookie. Until
/// the redirect is known to be valid, every error is a `400` HTML page, never a redirect.
#[utoipa::path(get, path = "/logout", tag = "logout", operation_id = "logoutGet",
    params(LogoutRequest, ("tenure_session" = Option<String>, Cookie, description = "The user session, set at sign-in (`__Host-tenure_session` on an https issuer)."), ("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie, set with the sign-in and confirmation pages (`__Host-tenure_csrf` on an https issuer).")),
    responses(
        (status = 200, description = "An HTML page: the confirmation page (\"Do you want to sign out?\", a form posting to `/logout` with the request's `id_token_hint`, `client_id`, `post_logout_redirect_uri`, `state` and a `csrf_token` in hidden inputs), or the \"You are signed out\" page after the session ended (then the session cookie is cleared).", content_type = "text/html; charset=utf-8", body = String),
        (status = 303, description = "Signed out (or nothing left to end): to the registered `post_logout_redirect_uri`, its own query kept, with `state` appended when sent."),
        (status = 400, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn logout_get() {}

/// RP-Initiated Logout, as a form body, or the confirmation form
///
/// The same request as `GET /logout` with the parameters in an `application/x-www-form-urlencoded`
/// body (at most 64 KiB). Also the target of the confirmation page's form: with `csrf_token` (the
/// HMAC of the browser's `tenure_csrf` cookie) the browser's session ends; a `csrf_token` that does
/// not match the cookie is a `400` page ("This sign-out form has expired"). Without a hint and
/// without a session cookie, a POST gets the confirmation page.
#[utoipa::path(post, path = "/logout", tag = "logout", operation_id = "logoutPost",
    params(("tenure_session" = Option<String>, Cookie, description = "The user session, set at sign-in (`__Host-tenure_session` on an https issuer)."), ("tenure_csrf" = Option<String>, Cookie, description = "The CSRF cookie, set with the sign-in and confirmation pages (`__Host-tenure_csrf` on an https issuer).")),
    request_body(content = LogoutRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An HTML page: the confirmation page (\"Do you want to sign out?\", a form posting to `/logout` with the request's `id_token_hint`, `client_id`, `post_logout_redirect_uri`, `state` and a `csrf_token` in hidden inputs), or the \"You are signed out\" page after the session ended (then the session cookie is cleared).", content_type = "text/html; charset=utf-8", body = String),
        (status = 303, description = "Signed out (or nothing left to end): to the registered `post_logout_redirect_uri`, its own query kept, with `state` appended when sent."),
        (status = 400, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 413, description = "The body exceeds 64 KiB: an HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
        (status = 500, description = "An HTML error page with a heading and a message.", content_type = "text/html; charset=utf-8", body = String),
    ))]
fn logout_post() {}

// ---- account ----

/// The caller's live sessions, newest sign-in first, then those that ended in the last 30 days
///
/// Ended sessions (SPEC 14) carry `ended: true`, `ended_at` (for a timeout, the deadline that
/// passed) and `end_reason`; live ones `ended: false`. Needs a user's access token (a client-credentials token is `403`); no permission.
#[utoipa::path(get, path = "/account/sessions", tag = "account", operation_id = "listOwnSessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The sessions; `current` marks the caller's own.", body = SessionList),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_own_sessions() {}

/// Sign out everywhere
///
/// Revokes every live session of the caller, the caller's own included (its token stops working at
/// once), and every token descending from them. Audited as `session_revoked` with reason
/// `user_signed_out_everywhere`, one event per session.
#[utoipa::path(delete, path = "/account/sessions", tag = "account", operation_id = "revokeOwnSessions",
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_own_sessions() {}

/// Revoke one of the caller's sessions
///
/// Idempotent: `204` also when the session was already revoked. Someone else's session, an unknown
/// or a malformed `sid` all answer `404` alike. Audited as `session_revoked` with reason
/// `user_revoked`.
#[utoipa::path(delete, path = "/account/sessions/{sid}", tag = "account", operation_id = "revokeOwnSession",
    params(("sid" = String, Path, description = "The session id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_own_session() {}

/// Change the caller's own password; every other session of theirs ends
///
/// Needs a user's access token (a client-credentials token is `403`); no permission. The body is
/// JSON or a form (`application/x-www-form-urlencoded`): `current_password`, `new_password`. The
/// current password is checked as at sign-in and counts against the same limits, per username and
/// address and per address: a wrong one is `400 invalid_grant` (audited as a failed sign-in), and
/// once the limit is reached `429 too_many_requests` with `Retry-After`, nothing checked. A new
/// password under 8 characters is `400 invalid_request` naming `new_password` and the rule. Then,
/// in one durable write, the new password is stored and every other session of the caller ends
/// (reason `credentials_changed`): their refresh tokens fail, their access tokens are refused and
/// inactive at introspection, back-channel logouts and revocation-feed events follow. The caller's
/// own session (the token's `sid`) stays signed in and its refresh token keeps working. Audited as
/// `user_updated` with reason `credentials_changed`, and `user_sessions_revoked`. A user from the
/// config file changes their password there (`409`).
#[utoipa::path(post, path = "/account/password", tag = "account", operation_id = "changeOwnPassword",
    request_body(content(
        (PasswordChange = "application/json"),
        (PasswordChange = "application/x-www-form-urlencoded"),
    )),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Changed; every other session of the caller has ended.",
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "`invalid_request`: a field is missing, unknown, given twice, or breaks a rule \
            (`new_password: must be at least 8 characters`); `invalid_grant`: `current_password` is wrong (counted as a \
            failed sign-in).", body = super::schemas::ApiError),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
        (status = 413, description = "The body exceeds 64 KiB.", body = super::schemas::ApiError),
        (status = 415, description = "The body is neither JSON nor a form.", body = super::schemas::ApiError),
        (status = 429, description = "`too_many_requests`: too many failed sign-ins or password checks for this \
            username from this address, or from this address; `Retry-After` names the wait.", body = super::schemas::ApiError),
        (status = 500, response = ApiServerError),
        (status = 503, description = "`temporarily_unavailable`: every password-hashing slot stayed busy, or the \
            database does not answer; retry after `Retry-After`.",
            body = super::schemas::ApiError),
    ))]
fn change_own_password() {}

// ---- admin: settings ----

/// The effective session policy and each value's source
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/settings/session", tag = "admin", operation_id = "getSessionSettings",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The policy.", body = Settings),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn get_session_settings() {}

/// Set admin values of the session policy
///
/// Needs `system:administer`. Each field of the body sets the admin value of its key (integer
/// seconds, or `"off"` for the idle timeouts), or drops it (`null`); fields not sent keep their
/// admin value. The result is validated with the file and environment layers by the start-up rules;
/// a violation changes nothing (`400 invalid_setting`). `max_lifetime_ceiling` may not be set.
/// Accepted values are persisted before the answer (they survive restarts and win over file and
/// environment), apply at once to new tokens and to live sessions at their next check (a session
/// older than a shortened `max_lifetime` is dead; loosening never revives it). Audited as
/// `settings_changed` with the old and new views. The floor of this API: `idle_timeout`,
/// `max_lifetime`, the remember-me pair and `access_token_ttl` at least the operator's
/// `session.admin_floor` (default 300 s; file and environment accept any value above zero).
/// `admin_floor` may not be set either. A key repeated in the JSON body is refused (`400
/// invalid_request`).
#[utoipa::path(put, path = "/admin/settings/session", tag = "admin", operation_id = "putSessionSettings",
    request_body(content = SettingsUpdate),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new policy.", body = Settings),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn put_session_settings() {}

/// Drop every admin value (back to file and environment)
///
/// Needs `system:administer`. Answers the new view. Audited as `settings_reset`. Loosening never
/// revives a session that already died.
#[utoipa::path(delete, path = "/admin/settings/session", tag = "admin", operation_id = "resetSessionSettings",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The policy without admin values.", body = Settings),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn reset_session_settings() {}

/// The effective limits for a client, a user and "Remember me", each with the rule that decided it
///
/// Needs `system:administer`. The values are those every refresh uses for that combination. An
/// empty parameter counts as absent; an unknown or repeated parameter is `400 invalid_request`.
#[utoipa::path(get, path = "/admin/settings/session/explain", tag = "admin", operation_id = "explainSessionSettings",
    params(
        ("client_id" = Option<String>, Query, description = "A client whose `session` override applies."),
        ("username" = Option<String>, Query, description = "A user (must exist)."),
        ("remember_me" = Option<bool>, Query, description = "`true` or `false` (default)."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The limits and why.", body = Explanation),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn explain_session_settings() {}

/// What a change of the session policy would do to the live sessions; nothing changes
///
/// Needs `system:administer`. The body is the one `PUT /admin/settings/session` takes, merged over
/// the current admin values the same way, and refused exactly as a `PUT` refuses it (same status,
/// `error` and `message`). Each live session is counted once by comparing the deadline it has now
/// (the earlier of its idle and absolute deadlines) with the one it would have; `by_client` counts
/// the live families per client the same way, with each client's `session` override applied.
/// Sessions that already died stay dead and are not counted.
#[utoipa::path(post, path = "/admin/settings/session/preview", tag = "admin", operation_id = "previewSessionSettings",
    request_body(content = SettingsUpdate),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The counts of sessions ending now, shortened, unchanged and extended.", body = Preview),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn preview_session_settings() {}

// ---- admin: group policies (SPEC 14) ----

/// Every group policy: each group's values and where it comes from
///
/// Needs `system:administer`. `source` is `file` (`[session.groups.NAME]`) or `admin` (set through
/// this API, kept in the store; it replaces the file's group of the same name).
#[utoipa::path(get, path = "/admin/settings/session/groups", tag = "admin", operation_id = "listGroupPolicies",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The groups, by name.", body = GroupList),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
    ))]
fn list_group_policies() {}

/// One group policy
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/settings/session/groups/{name}", tag = "admin", operation_id = "getGroupPolicy",
    params(("name" = String, Path, description = "The group.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn get_group_policy() {}

/// Set a group policy (create or replace its values)
///
/// Needs `system:administer`. A value may only tighten the global policy (`400 invalid_setting`
/// naming the group, the key and the rule, like a loosening client override), and a duration must
/// be at least `session.admin_floor`. The change is persisted and audited (`settings_changed`,
/// target `session.groups.NAME`) before the answer, and applies to the members' live sessions at
/// their next check.
#[utoipa::path(put, path = "/admin/settings/session/groups/{name}", tag = "admin", operation_id = "putGroupPolicy",
    params(("name" = String, Path, description = "The group: 1 to 64 letters, digits, `-`, `_` or `.`.")),
    request_body(content = GroupUpdate),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The group as set.", body = GroupView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn put_group_policy() {}

/// Delete a group policy set through the admin API
///
/// Needs `system:administer`. `204` when the group is gone; `200` with the config file's group of
/// the same name, which applies again. `409` for a group that only the config file sets, or while
/// users are still in a group only the admin API sets (the message names them).
#[utoipa::path(delete, path = "/admin/settings/session/groups/{name}", tag = "admin", operation_id = "deleteGroupPolicy",
    params(("name" = String, Path, description = "The group.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The config file's group, in force again.", body = GroupView),
        (status = 204, description = "Deleted."),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn delete_group_policy() {}

/// What setting (or deleting) a group policy would do to its members' live sessions; nothing changes
///
/// Needs `system:administer`. The body a `PUT` takes, refused as a `PUT` refuses it, or
/// `{"delete": true}`. Counted as `POST /admin/settings/session/preview` counts.
#[utoipa::path(post, path = "/admin/settings/session/groups/{name}/preview", tag = "admin", operation_id = "previewGroupPolicy",
    params(("name" = String, Path, description = "The group.")),
    request_body(content = GroupPreviewRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The counts of sessions ending now, shortened, unchanged and extended.", body = Preview),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn preview_group_policy() {}

// ---- admin: users ----

/// Users from the config file and the admin API, sorted by username, 50 a page
///
/// Needs `users:edit` (or `system:administer`). An empty parameter counts as absent; an unknown or
/// repeated parameter is `400 invalid_request`.
#[utoipa::path(get, path = "/admin/users", tag = "admin", operation_id = "listUsers",
    params(
        ("query" = Option<String>, Query, description = "Keep users whose username, name or email contains it (case-insensitive)."),
        ("page" = Option<u64>, Query, description = "From 1 (default)."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "One page of users.", body = UserPage),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_users() {}

/// Create a user kept in the store
///
/// Needs `users:edit`; a non-empty `permissions` needs `system:administer`. The password is stored
/// as an argon2id hash and never returned. The user can sign in at once. Audited as `user_created`.
#[utoipa::path(post, path = "/admin/users", tag = "admin", operation_id = "createUser",
    request_body(content = NewUser),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created.", body = UserView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn create_user() {}

/// One user, config or admin, disabled or not
///
/// Needs `users:edit` (or `system:administer`).
#[utoipa::path(get, path = "/admin/users/{username}", tag = "admin", operation_id = "showUser",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn show_user() {}

/// Change an admin user; disabling or a new password revokes every session in the same write
///
/// Needs `users:edit`; a `permissions` field (whatever its value) needs `system:administer`. Fields
/// not sent keep their value. Disabling (`disabled` from `false` to `true`) revokes every session
/// of the user in the same durable write as the change: when the answer arrives their refresh
/// tokens fail, their access tokens are refused and inactive at introspection, tokens exchanged
/// from them die, and the user cannot sign in; back-channel logouts are fanned out afterwards.
/// Audited as `user_disabled`. Enabling again does not revive revoked sessions. A new password
/// (`password` or `password_hash`) ends every session of the user in the same way and the same
/// write (reason `credentials_changed`, audited as `user_updated` with that reason and
/// `user_sessions_revoked`). Other changes are audited as `user_updated` with the fields set in
/// `details.changed`. Users from the config file are read-only (`409`).
#[utoipa::path(patch, path = "/admin/users/{username}", tag = "admin", operation_id = "updateUser",
    params(("username" = String, Path)),
    request_body(content = UserPatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The changed user.", body = UserView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn update_user() {}

/// Delete an admin user; every session is revoked in the same write
///
/// Needs `users:edit` (or `system:administer`). Every session of the user is revoked in the same
/// durable write as the deletion, with the effects of disabling. Audited as `user_deleted`. Users
/// from the config file are read-only (`409`); an unknown or already deleted user is `404`.
#[utoipa::path(delete, path = "/admin/users/{username}", tag = "admin", operation_id = "deleteUser",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiBadRequest),
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
/// Needs `system:administer`. Never a secret.
#[utoipa::path(get, path = "/admin/clients", tag = "admin", operation_id = "listClients",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The clients.", body = ClientList),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_clients() {}

/// Register a client
///
/// Needs `system:administer`. The same validation as `[[clients]]` in the config file, with the
/// same messages; a `session` override may only tighten the global policy in force. A confidential
/// client without `secret` gets a generated one (256 bits, base64url), returned once as
/// `client_secret` (RFC 7591); only its argon2id hash is kept. A given `secret` is not echoed. The
/// client works at once. Audited as `client_created`.
#[utoipa::path(post, path = "/admin/clients", tag = "admin", operation_id = "createClient",
    request_body(content = ClientSettings),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created; a confidential client's secret is shown this once.", body = ClientWithSecret),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn create_client() {}

/// One client's settings, never a secret
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/clients/{id}", tag = "admin", operation_id = "showClient",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The client.", body = ClientView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn show_client() {}

/// Replace every setting of an admin client
///
/// Needs `system:administer`. The body is a whole client as for `POST` (fields left out take their
/// defaults, not their old values); `id` may be left out and, when given, must equal the path's. A
/// confidential client that stays confidential keeps its secret unless the body has a new `secret`
/// (not echoed); a public client turned confidential without `secret` gets a generated one,
/// returned once as `client_secret`; a client turned public loses its secret. The new settings
/// apply at once (a changed `session` override to the client's live families at their next check);
/// nothing is revoked. Audited as `client_updated` with the old and new settings. Clients from the
/// config file are read-only (`409`).
#[utoipa::path(put, path = "/admin/clients/{id}", tag = "admin", operation_id = "replaceClient",
    params(("id" = String, Path, description = "The client id.")),
    request_body(content = ClientSettings),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new settings.", body = ClientView),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn replace_client() {}

/// Delete an admin client after revoking its families
///
/// Needs `system:administer`. Every live family of the client is revoked first (audited as
/// `family_revoked` with reason `client_deleted`): its refresh tokens fail and its access tokens,
/// client-credentials ones included, are refused and inactive at introspection. Then the client is
/// removed and can no longer authenticate. The sessions stay alive for the user's other clients.
/// The deleted client is sent no logout tokens for these families (they are addressed by its
/// `backchannel_logout_uri` at delivery time, and it is gone by then). Audited as `client_deleted`
/// with `families_revoked`. Clients from the config file are read-only (`409`); an unknown or
/// already deleted client is `404`.
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin", operation_id = "deleteClient",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn delete_client() {}

/// A new generated secret for a confidential admin client, returned once
///
/// Needs `system:administer`. No body. The old secret stops working at once; tokens already issued
/// stay valid until their `exp` (remove the client's permissions or delete it to end them at once);
/// only the new secret's argon2id hash is kept. Audited as `client_secret_rotated`. A public client
/// is `400`; a client from the config file is read-only (`409`).
#[utoipa::path(post, path = "/admin/clients/{id}/secret", tag = "admin", operation_id = "rotateClientSecret",
    params(("id" = String, Path, description = "The client id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new secret; the old one stops working.", body = ClientSecret),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 500, response = ApiServerError),
    ))]
fn rotate_client_secret() {}

// ---- admin: keys ----

/// Every signing key in the manifest with its state and age, newest first
///
/// Needs `system:administer`.
#[utoipa::path(get, path = "/admin/keys", tag = "admin", operation_id = "listKeys",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The keys.", body = KeyList),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn list_keys() {}

/// Generate the next signing key, published at once, signing after key_publish_ahead
///
/// Needs `system:administer`. No body. The same as `tenure keys rotate`: a new primary key of the
/// configured `signing_alg` (and a new RS256 companion when `signing_alg` is not RS256) is written
/// to `keys_dir` and published in the JWKS at once in state `next`; it signs from `active_from`
/// (`key_publish_ahead` later), and the previous keys are then retired, staying published until
/// every token they signed has expired. Audited as `key_rotated`.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin", operation_id = "rotateKey",
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The keys, the new one first.", body = KeyList),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 500, response = ApiServerError),
    ))]
fn rotate_key() {}

// ---- admin: sessions and audit ----

/// A user's live sessions, newest sign-in first, then those that ended in the last 30 days
///
/// Ended sessions (SPEC 14) carry `ended: true`, `ended_at` (for a timeout, the deadline that
/// passed), `end_reason` and `ended_by`; live ones `ended: false`.
///
/// Needs `users:edit` (or `system:administer`), checked before the user is looked up.
#[utoipa::path(get, path = "/admin/users/{username}/sessions", tag = "admin", operation_id = "listUserSessions",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The sessions.", body = UserSessionList),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn list_user_sessions() {}

/// Revoke every session of a user
///
/// Needs `users:edit` (or `system:administer`). One write whatever the number of sessions: every
/// session the user has now dies with every token descending from it; later sign-ins are not
/// affected. Back-channel logouts are fanned out afterwards. Audited as `user_sessions_revoked`
/// with reason `admin_revoked`.
#[utoipa::path(delete, path = "/admin/users/{username}/sessions", tag = "admin", operation_id = "revokeUserSessions",
    params(("username" = String, Path)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_user_sessions() {}

/// Revoke one session of anyone
///
/// Needs `users:edit` (or `system:administer`). `204` also when the session was already revoked;
/// `404` for an unknown `sid`. Every token descending from the session dies at once. Audited as
/// `session_revoked` with reason `admin_revoked`.
#[utoipa::path(delete, path = "/admin/sessions/{sid}", tag = "admin", operation_id = "revokeSession",
    params(("sid" = String, Path, description = "The session id.")),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 500, response = ApiServerError),
    ))]
fn revoke_session() {}

/// The audit log, newest first, in pages, optionally filtered by kind and user
///
/// Needs `users:edit` (or `system:administer`). Pass the `next` of a page as `before` to get the
/// following one. Other query parameters are ignored; an empty `kind` or `user` counts as absent; a
/// bad or repeated `limit` or `before`, or a repeated `kind` or `user`, is `400 invalid_request`
/// naming it. With `kind` or `user`, one page examines at most 20 000 events; when it stops there,
/// `next` is where it stopped, so a page may hold fewer events than `limit` (even none) while
/// `next` is not `null`.
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
        (status = 400, response = ApiBadRequest),
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
///
/// With PostgreSQL, whether the database answers a query now (within about 4 s: the pool's wait, then the query):
/// a load balancer stops sending requests to a replica while it says 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "`{\"status\": \"ready\", \"store\": \"postgres\", \"database\": \"tenure@db:5432/tenure\"}` (`database` with PostgreSQL only).", body = Ready),
        (status = 503, description = "The store does not answer; with `Retry-After`.", body = Unavailable,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again."))),
    ))]
fn readyz() {}

/// Metrics (Prometheus / OpenMetrics text format)
///
/// See docs/operations.md for the metric names. No authentication.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
fn metrics() {}

// ---- feed (SSF) ----

/// The transmitter configuration (SSF 1.0 7.1)
#[utoipa::path(get, path = "/.well-known/ssf-configuration", tag = "feed", operation_id = "ssfConfiguration",
    responses((status = 200, description = "The configuration.", body = SsfConfiguration)))]
fn ssf_configuration() {}

/// The caller's event stream (or the list of its streams)
///
/// Needs `ssf.read` or `ssf.manage`. With `stream_id`, that stream (404 when it is not the
/// caller's); without, a list holding the caller's stream, or empty.
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

/// Create the caller's event stream
///
/// Needs `ssf.manage`. `409 conflict` when the client already has one (one stream per receiving
/// client).
#[utoipa::path(post, path = "/ssf/stream", tag = "feed", operation_id = "createSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Created.", body = SsfStream),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 409, response = ApiConflict),
    ))]
fn create_ssf_stream() {}

/// Change the receiver-supplied properties present in the body
///
/// Needs `ssf.manage`. `stream_id` in the body names the stream.
#[utoipa::path(patch, path = "/ssf/stream", tag = "feed", operation_id = "patchSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The stream.", body = SsfStream),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn patch_ssf_stream() {}

/// Replace the receiver-supplied properties
///
/// Needs `ssf.manage`. `events_requested` and `description` not given are reset; `delivery` is
/// required.
#[utoipa::path(put, path = "/ssf/stream", tag = "feed", operation_id = "replaceSsfStream",
    request_body(content = SsfStreamRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The stream.", body = SsfStream),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn replace_ssf_stream() {}

/// Delete the caller's stream and every event queued for it
///
/// Needs `ssf.manage`.
#[utoipa::path(delete, path = "/ssf/stream", tag = "feed", operation_id = "deleteSsfStream",
    params(("stream_id" = String, Query)),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn delete_ssf_stream() {}

/// The stream's status
///
/// Needs `ssf.read` or `ssf.manage`.
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

/// Enable, pause or disable the stream
///
/// Needs `ssf.manage`. `paused` holds events until the stream is enabled again; `disabled` drops
/// what was queued and queues nothing.
#[utoipa::path(post, path = "/ssf/status", tag = "feed", operation_id = "setSsfStatus",
    request_body(content = SsfStatus),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The new status.", body = SsfStatus),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
    ))]
fn set_ssf_status() {}

/// Queue a verification event (SSF 1.0 8.1.4)
///
/// Needs `ssf.manage`. The SET carries `sub_id` `{"format": "opaque", "id": <stream_id>}` and the
/// event `https://schemas.openid.net/secevent/ssf/event-type/verification` with the given `state`.
/// `409` for a disabled stream; `429` within `min_verification_interval` (30 s) of the stream's
/// last verification request.
#[utoipa::path(post, path = "/ssf/verify", tag = "feed", operation_id = "verifySsfStream",
    request_body(content = SsfVerifyRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 204, description = "Queued."),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
        (status = 429, description = "At most one verification request per stream every `min_verification_interval`; `Retry-After`.", body = super::schemas::ApiError),
    ))]
fn verify_ssf_stream() {}

/// RFC 8936 poll delivery
///
/// Needs `ssf.read` or `ssf.manage`, and a stream with poll delivery (`409` for a push stream).
/// Acknowledgements (`ack`, `setErrs`) are removed first; then up to `maxEvents` queued SETs are
/// returned, oldest first. Without `returnImmediately: true` and with nothing queued, the answer
/// waits up to 10 s for an event. A paused stream returns no SETs.
#[utoipa::path(post, path = "/ssf/poll", tag = "feed", operation_id = "pollSsf",
    request_body(content = SsfPollRequest),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The SETs by `jti`.", body = SsfPollResponse),
        (status = 400, response = ApiBadRequest),
        (status = 401, response = ApiUnauthorized),
        (status = 403, response = ApiForbidden),
        (status = 404, response = ApiNotFound),
        (status = 409, response = ApiConflict),
    ))]
fn poll_ssf() {}
