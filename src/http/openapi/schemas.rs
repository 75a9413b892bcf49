//! Bodies that the handlers build as `serde_json::json!` or read as a form
//! or a JSON map, described as types for the OpenAPI document only. Each
//! mirrors what its handler writes or reads; the view types that exist
//! (`TokenResponse`, `UserView`, `SessionView`, ...) derive their schema
//! where they live.

// Never built: only their `ToSchema` is read.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

// ---- errors ----

/// An OAuth error (RFC 6749 5.2), from `/token`, `/revoke` and
/// `/introspect`. `invalid_client` is 401 with a `WWW-Authenticate: Basic`
/// header when the client tried HTTP Basic; `temporarily_unavailable` is
/// 503 with `Retry-After`; `server_error` is 500; everything else is 400.
#[derive(ToSchema)]
pub struct OAuthError {
    #[schema(
        example = "invalid_grant",
        pattern = "^(invalid_request|invalid_client|invalid_grant|invalid_dpop_proof|use_dpop_nonce|unauthorized_client|unsupported_grant_type|invalid_scope|invalid_target|unsupported_token_type|temporarily_unavailable|server_error)$"
    )]
    pub error: String,
    /// Human-readable; never contains a secret. For a refresh refused
    /// because its session ended, a sentence an app can show its user as
    /// it is ("the session ended after 30 minutes of inactivity").
    pub error_description: String,
    /// SPEC 14: only on `invalid_grant` from a refresh whose session (or
    /// refresh-token family) ended: why.
    #[schema(
        example = "idle_timeout",
        pattern = "^(idle_timeout|max_lifetime|signed_out|revoked|reuse_detected|user_disabled|credentials_changed|session_limit|client_deleted)$"
    )]
    pub session_end_reason: Option<String>,
}

/// A bearer token error (RFC 6750 3.1), from `/userinfo`; the same code is
/// in the `WWW-Authenticate` header.
#[derive(ToSchema)]
pub struct BearerError {
    /// `invalid_request`, `invalid_token`, `insufficient_scope` or `server_error`.
    #[schema(example = "invalid_token")]
    pub error: String,
    pub error_description: String,
}

/// The error body of the admin, account and feed API (`ApiError`).
#[derive(ToSchema)]
pub struct ApiError {
    /// `invalid_request`, `invalid_setting`, `invalid_grant` (a wrong current
    /// password), `unauthorized`, `invalid_token`, `forbidden`,
    /// `insufficient_scope`, `not_found`, `conflict`, `too_many_requests`,
    /// `temporarily_unavailable` or `server_error`.
    #[schema(example = "not_found")]
    pub error: String,
    /// Says what was wrong, e.g. which field and why.
    pub message: String,
}

// ---- discovery ----

/// OpenID Provider metadata (OIDC Discovery 1.0 section 3) and
/// authorization server metadata (RFC 8414 section 2): the same document at
/// both addresses. Only what is implemented is advertised.
#[derive(ToSchema)]
pub struct DiscoveryMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub end_session_endpoint: String,
    /// RFC 8628 4: `POST /device_authorization`.
    pub device_authorization_endpoint: String,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub jwks_uri: String,
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:token-exchange`,
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_types_supported: Vec<String>,
    /// `["code"]`.
    pub response_types_supported: Vec<String>,
    /// `["query"]`.
    pub response_modes_supported: Vec<String>,
    /// `["S256"]`.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9449 5.1: the algorithms of DPoP proofs.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// `none`, `login`, `consent`, `select_account`.
    pub prompt_values_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// `["public"]`.
    pub subject_types_supported: Vec<String>,
    /// The configured algorithm, and RS256 (OIDC Core 15.1).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The configured `signing_alg`.
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `none`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `none`.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    /// Every scope some client may request, sorted.
    pub scopes_supported: Vec<String>,
    /// tenure's activity-aware idle: a `refresh_token` grant may say
    /// `activity=background`; it rotates without moving the idle clock.
    pub refresh_token_activity_values_supported: Vec<String>,
}

/// A JSON Web Key Set (RFC 7517 5): the published signing keys, next,
/// active and retired (until their tokens have expired).
#[derive(ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A public signing key (RFC 7517 4).
#[derive(ToSchema)]
pub struct Jwk {
    /// `EC`, `OKP` or `RSA`.
    pub kty: String,
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `P-256` (EC) or `Ed25519` (OKP).
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    /// RSA modulus.
    pub n: Option<String>,
    /// RSA exponent.
    pub e: Option<String>,
}

// ---- forms of the OAuth endpoints ----

/// The authorization request (RFC 6749 4.1.1, OIDC Core 3.1.2.1, RFC 7636
/// 4.3, RFC 9449 10): as the query of GET or the form body of POST.
#[derive(ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizationRequest {
    /// `code`.
    pub response_type: String,
    pub client_id: String,
    /// Must equal one of the client's registered URIs; may be left out when
    /// it has exactly one.
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// Required for public clients (S256 only).
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// RFC 9449 10: binds the code to a DPoP key.
    pub dpop_jkt: Option<String>,
    /// `none`, `login`, `consent` or `select_account`.
    pub prompt: Option<String>,
    /// Seconds since sign-in after which the user signs in again.
    pub max_age: Option<u64>,
    /// `query`.
    pub response_mode: Option<String>,
    /// Refused: `request_not_supported`.
    pub request: Option<String>,
    /// Refused: `request_uri_not_supported`.
    pub request_uri: Option<String>,
}

/// The sign-in form of the page `/authorize` shows.
#[derive(ToSchema)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    /// `on` when ticked: the `remember_me_*` limits apply.
    pub remember_me: Option<String>,
    /// The token of the CSRF cookie set with the page.
    pub csrf_token: String,
    /// The authorization request's parameters, form-encoded.
    pub return_to: String,
}

/// The form of the "Too many sessions" page (SPEC 14, `on_session_limit =
/// "ask"`).
#[derive(ToSchema)]
pub struct SessionLimitForm {
    /// The token of the CSRF cookie, as on the sign-in form.
    pub csrf_token: String,
    /// The pending sign-in (kept on the server for 5 minutes, bound to the
    /// browser's CSRF cookie, used once).
    pub pending: String,
    /// `end` (end the session `end` and sign in) or `cancel`.
    pub action: String,
    /// The `sid` of one of the user's live sessions.
    pub end: Option<String>,
}

/// The token request (RFC 6749 4.1.3, 6, 4.4; RFC 8693 2.1), form-encoded.
/// Which fields apply depends on `grant_type`; the client authenticates
/// with HTTP Basic, with `client_id` + `client_secret` in the body, or
/// (public clients) with `client_id` alone. A DPoP proof (RFC 9449) in the
/// `DPoP` header binds the issued tokens to its key.
#[derive(ToSchema)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:token-exchange` or
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `authorization_code`: the code from the redirect.
    pub code: Option<String>,
    /// `authorization_code`: the same as in the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636 4.5).
    pub code_verifier: Option<String>,
    /// `refresh_token`: the current refresh token; presenting a rotated
    /// one after the reuse grace revokes the whole family.
    pub refresh_token: Option<String>,
    /// `refresh_token`: `interactive` (default, restarts the idle clock) or
    /// `background` (rotates without moving it).
    pub activity: Option<String>,
    /// `refresh_token`, `client_credentials`, token exchange: a subset of
    /// the granted or allowed scopes.
    pub scope: Option<String>,
    /// Token exchange: the access token to exchange.
    pub subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    pub subject_token_type: Option<String>,
    /// Token exchange: the client to issue the token to.
    pub audience: Option<String>,
    /// Token exchange: the requested token type.
    pub requested_token_type: Option<String>,
    /// Device grant: the `device_code` of `POST /device_authorization`.
    pub device_code: Option<String>,
}

/// RFC 8628 3.1: a device authorization request.
#[derive(ToSchema)]
pub struct DeviceAuthorizationForm {
    /// A public client's id (`none` authentication), or with
    /// `client_secret_post`.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Within the client's registered scopes; those when omitted.
    pub scope: Option<String>,
}

/// The code form of `/device`.
#[derive(ToSchema)]
pub struct DeviceCodeForm {
    /// The token of the CSRF cookie set with the page.
    pub csrf_token: String,
    /// As typed: case, dashes and spaces are ignored.
    pub user_code: String,
}

/// The confirmation form of `/device`.
#[derive(ToSchema)]
pub struct DeviceDecisionForm {
    pub csrf_token: String,
    pub user_code: String,
    /// `approve` or `deny`.
    pub action: String,
}

/// RFC 7009 2.1 (revocation) and RFC 7662 2.1 (introspection).
#[derive(ToSchema)]
pub struct TokenForm {
    pub token: String,
    /// `access_token` or `refresh_token`: where to look first.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 6750 2.2: the access token in the form body of `POST /userinfo`.
#[derive(ToSchema)]
pub struct UserinfoForm {
    pub access_token: Option<String>,
}

/// The RP-Initiated Logout request (OIDC RP-Initiated Logout 1.0 2), as the
/// query of GET or the form body of POST; POST with `csrf_token` is the
/// confirmation form.
#[derive(ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
    pub logout_hint: Option<String>,
    /// The confirmation form's token.
    pub csrf_token: Option<String>,
}

// ---- token answers ----

/// The userinfo claims (OIDC Core 5.3.2) the access token's scopes allow.
#[derive(ToSchema)]
pub struct Userinfo {
    pub sub: String,
    /// With `profile`.
    pub preferred_username: Option<String>,
    /// With `profile`, when the user has one.
    pub name: Option<String>,
    /// With `email`, when the user has one.
    pub email: Option<String>,
}

/// RFC 7662 2.2. An inactive token is only `{"active": false}`.
#[derive(ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    /// Access tokens.
    pub jti: Option<String>,
    /// `Bearer`, `DPoP` or `refresh_token`.
    pub token_type: Option<String>,
    /// RFC 9449 6.2: the thumbprint of the DPoP key a token is bound to.
    pub cnf: Option<crate::token::claims::Confirmation>,
    pub sid: Option<String>,
    pub username: Option<String>,
    pub auth_time: Option<u64>,
}

// ---- operations ----

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

/// `{"status": "ready", "store": "postgres", "database": "tenure@db:5432/tenure"}`.
#[derive(ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: String,
    /// `sled` or `postgres`.
    #[schema(example = "postgres")]
    pub store: String,
    /// With PostgreSQL: the database as `user@host:port/dbname` (never the password).
    #[schema(example = "tenure@db:5432/tenure")]
    pub database: Option<String>,
}

/// `{"status": "unavailable", "store": "postgres", "message": "the database tenure@db:5432/tenure does not answer"}`.
#[derive(ToSchema)]
pub struct Unavailable {
    #[schema(example = "unavailable")]
    pub status: String,
    #[schema(example = "postgres")]
    pub store: String,
    #[schema(example = "the database tenure@db:5432/tenure does not answer")]
    pub message: String,
}

// ---- admin ----

/// An idle timeout: integer seconds, or `"off"` (no idle limit).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum IdleSetting {
    Seconds(u64),
    /// `off`.
    Off(String),
}

/// The effective session policy; durations are integer seconds. `sources`
/// names, for each key, where its value came from: `default`, `file`,
/// `env` or `admin`.
#[derive(ToSchema)]
pub struct Settings {
    pub idle_timeout: IdleSetting,
    pub max_lifetime: u64,
    pub remember_me_idle_timeout: IdleSetting,
    pub remember_me_max_lifetime: u64,
    pub access_token_ttl: u64,
    pub refresh_reuse_grace: u64,
    /// Read-only: from the file or the environment.
    pub max_lifetime_ceiling: u64,
    /// Read-only: the smallest value the admin API accepts.
    pub admin_floor: u64,
    /// A user's live sessions at most; `0` = no limit (SPEC 14).
    pub max_sessions: u64,
    /// `end_oldest` or `ask`: what a sign-in at the limit does.
    pub on_session_limit: String,
    pub sources: BTreeMap<String, String>,
}

/// Admin values of the session policy: each key given is set (seconds, or
/// a duration string like `"30m"`), `null` drops the admin value. Unknown
/// and read-only keys are refused (`invalid_setting`, naming the key).
#[derive(ToSchema)]
pub struct SettingsUpdate {
    pub idle_timeout: Option<Value>,
    pub max_lifetime: Option<Value>,
    pub remember_me_idle_timeout: Option<Value>,
    pub remember_me_max_lifetime: Option<Value>,
    pub access_token_ttl: Option<Value>,
    pub refresh_reuse_grace: Option<Value>,
    /// A whole number, 0 or more (0 = no limit); a negative one is refused.
    pub max_sessions: Option<i64>,
    /// `end_oldest` or `ask`; anything else is refused.
    pub on_session_limit: Option<String>,
}

/// A group policy (SPEC 14) as `PUT /admin/settings/session/groups/{name}`
/// takes it: each key optional (left out or `null`: the global value). A
/// value may only tighten the global policy, and a duration is at least
/// `session.admin_floor`.
#[derive(ToSchema)]
pub struct GroupUpdate {
    /// Seconds, greater than 0.
    pub idle_timeout: Option<u64>,
    /// Seconds, greater than 0.
    pub max_lifetime: Option<u64>,
    /// Seconds, greater than 0.
    pub access_token_ttl: Option<u64>,
    /// At least 1; at most `session.max_sessions` when that is set.
    pub max_sessions: Option<u32>,
}

/// A group preview body: a [`GroupUpdate`], or `{"delete": true}` to
/// preview deleting the group.
#[derive(ToSchema)]
pub struct GroupPreviewRequest {
    pub idle_timeout: Option<u64>,
    pub max_lifetime: Option<u64>,
    pub access_token_ttl: Option<u64>,
    pub max_sessions: Option<u32>,
    /// `true` alone: what deleting the group would do.
    pub delete: Option<bool>,
}

/// `GET /admin/settings/session/groups`.
#[derive(ToSchema)]
pub struct GroupList {
    pub groups: Vec<crate::service::groups::GroupView>,
}

/// The fields of `PATCH /admin/users/{username}`; each is optional and only
/// those given change. Disabling, or a new password, revokes every session
/// in the same write.
#[derive(ToSchema)]
pub struct UserPatch {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    /// An argon2id PHC string, instead of `password`.
    pub password_hash: Option<String>,
    /// `system:administer` and/or `users:edit`; needs `system:administer`.
    pub permissions: Option<Vec<String>>,
    pub disabled: Option<bool>,
    /// The user's groups (SPEC 14), replaced as a whole; each a group of
    /// the session policy; needs `system:administer`.
    pub groups: Option<Vec<String>>,
}

/// The body of `POST /account/password` (JSON or a form; unknown fields are
/// refused).
#[derive(ToSchema)]
pub struct PasswordChange {
    /// The caller's password now; checked as at sign-in, and a wrong one
    /// counts against the sign-in limits.
    pub current_password: String,
    /// At least 8 characters.
    pub new_password: String,
}

/// A client's own, shorter session limits (seconds, a duration string, or
/// `null` for the global value).
#[derive(ToSchema)]
pub struct ClientSessionOverride {
    pub idle_timeout: Option<Value>,
    pub max_lifetime: Option<Value>,
    pub access_token_ttl: Option<Value>,
}

/// A client's settings as `POST /admin/clients` and
/// `PUT /admin/clients/{id}` take them (unknown fields are refused). A
/// confidential client without `secret` gets a generated one, returned once.
#[derive(ToSchema)]
pub struct ClientSettings {
    /// Generated when left out (POST); the path's id (PUT).
    pub id: Option<String>,
    pub name: Option<String>,
    pub public: Option<bool>,
    /// At least 16 characters; stored as an argon2id hash.
    pub secret: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub web_origins: Option<Vec<String>>,
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    pub grant_types: Vec<String>,
    pub scopes: Option<Vec<String>>,
    pub backchannel_logout_uri: Option<String>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub token_exchange_audiences: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub session: Option<ClientSessionOverride>,
    /// `RS256` or the configured `signing_alg`.
    /// `web` (the default) or `native` (RFC 8252: any loopback port).
    pub application_type: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
}

/// A client as the admin API shows it: its settings, never a secret.
#[derive(ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: Option<String>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub web_origins: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub token_exchange_audiences: Vec<String>,
    pub permissions: Vec<String>,
    pub session: Option<ClientSessionOverride>,
    /// `web` (the default) or `native` (RFC 8252: any loopback port).
    pub application_type: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    /// `config` (read-only), `builtin` (the console client, read-only) or `admin`.
    pub source: String,
}

/// A created client: its view and, for a confidential client, the secret,
/// shown this once.
#[derive(ToSchema)]
pub struct ClientWithSecret {
    #[schema(inline)]
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

/// `GET /admin/clients`.
#[derive(ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// A new generated secret, shown this once.
#[derive(ToSchema)]
pub struct ClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

/// `GET /admin/keys` and `POST /admin/keys/rotate`, newest first.
#[derive(ToSchema)]
pub struct KeyList {
    pub keys: Vec<crate::service::keys::KeyView>,
}

/// `GET /account/sessions`, newest sign-in first.
#[derive(ToSchema)]
pub struct SessionList {
    pub sessions: Vec<crate::service::sessions::SessionView>,
}

/// `GET /admin/users/{username}/sessions`, newest sign-in first.
#[derive(ToSchema)]
pub struct UserSessionList {
    pub username: String,
    pub sessions: Vec<crate::service::sessions::SessionView>,
}

// ---- feed (SSF) ----

/// The transmitter configuration (SSF 1.0 7.1).
#[derive(ToSchema)]
pub struct SsfConfiguration {
    /// `1_0`.
    pub spec_version: String,
    pub issuer: String,
    pub jwks_uri: String,
    /// `urn:ietf:rfc:8935` (push) and `urn:ietf:rfc:8936` (poll).
    pub delivery_methods_supported: Vec<String>,
    pub configuration_endpoint: String,
    pub status_endpoint: String,
    pub verification_endpoint: String,
    pub authorization_schemes: Vec<Value>,
    /// `ALL`: every subject of the feed.
    pub default_subjects: String,
}

/// How a stream's events reach the receiver.
#[derive(ToSchema)]
pub struct SsfDelivery {
    /// `urn:ietf:rfc:8936` (poll) or `urn:ietf:rfc:8935` (push).
    pub method: String,
    /// Push: where to POST; poll: the address to poll (set by tenure).
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header to send (write-only).
    pub authorization_header: Option<String>,
}

/// A stream configuration as `POST`, `PATCH` and `PUT /ssf/stream` take it.
#[derive(ToSchema)]
pub struct SsfStreamRequest {
    /// PATCH and PUT: the stream to change.
    pub stream_id: Option<String>,
    pub delivery: Option<SsfDelivery>,
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A stream configuration (SSF 1.0 8.1.1).
#[derive(ToSchema)]
pub struct SsfStream {
    pub stream_id: String,
    pub iss: String,
    /// The receiving client.
    pub aud: String,
    pub events_supported: Vec<String>,
    pub events_requested: Vec<String>,
    pub events_delivered: Vec<String>,
    pub delivery: SsfDelivery,
    pub min_verification_interval: Option<u64>,
    pub description: Option<String>,
}

/// A stream's status (SSF 1.0 8.1.2).
#[derive(ToSchema)]
pub struct SsfStatus {
    pub stream_id: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    pub reason: Option<String>,
}

/// `POST /ssf/verify`: ask for a verification event.
#[derive(ToSchema)]
pub struct SsfVerifyRequest {
    pub stream_id: String,
    /// Echoed in the verification event.
    pub state: Option<String>,
}

/// The poll request (RFC 8936 2.4).
#[derive(ToSchema)]
#[allow(non_snake_case)]
pub struct SsfPollRequest {
    /// The `jti`s of SETs received.
    pub ack: Option<Vec<String>>,
    /// SETs the receiver refused, by `jti`, each `{"err", "description"}`.
    pub setErrs: Option<BTreeMap<String, Value>>,
    pub maxEvents: Option<u64>,
    pub returnImmediately: Option<bool>,
}

/// The poll response (RFC 8936 2.5): SETs by `jti`.
#[derive(ToSchema)]
#[allow(non_snake_case)]
pub struct SsfPollResponse {
    pub sets: BTreeMap<String, String>,
    pub moreAvailable: bool,
}
