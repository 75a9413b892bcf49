//! The OpenAPI 3.1 document of the HTTP API, generated from the code:
//! the operations are the stubs of [`paths`] (one per route and method of
//! [`super::router`]), the bodies are the view types (which derive
//! `utoipa::ToSchema` where they live) and the descriptions of [`schemas`]
//! for answers built as JSON values. Served at `GET /openapi.json`;
//! `docs/openapi.yaml` is the same document, committed, and a test fails
//! when it differs (`TENURE_WRITE_OPENAPI=1 cargo test --lib openapi`
//! rewrites it).

mod paths;
mod responses;
mod schemas;
mod webhooks;

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{OpenApi as Document, ServerBuilder, ServerVariableBuilder};
use utoipa::{Modify, OpenApi};

/// The API as implemented; `docs/api.md` is the prose reference.
#[derive(OpenApi)]
#[openapi(
    info(title = "tenure", license(name = "Apache-2.0", identifier = "Apache-2.0")),
    paths(
        paths::openid_configuration,
        paths::openid_configuration_preflight,
        paths::oauth_authorization_server,
        paths::oauth_authorization_server_preflight,
        paths::jwks,
        paths::jwks_preflight,
        paths::openapi,
        paths::authorize,
        paths::authorize_post,
        paths::login,
        paths::login_session_limit,
        paths::token,
        paths::token_preflight,
        paths::device_authorization,
        paths::device_page,
        paths::device_enter,
        paths::device_decision,
        paths::device_login,
        paths::userinfo_get,
        paths::userinfo_post,
        paths::userinfo_preflight,
        paths::revoke,
        paths::revoke_preflight,
        paths::introspect,
        paths::logout_get,
        paths::logout_post,
        paths::list_own_sessions,
        paths::revoke_own_sessions,
        paths::revoke_own_session,
        paths::change_own_password,
        paths::get_session_settings,
        paths::put_session_settings,
        paths::reset_session_settings,
        paths::explain_session_settings,
        paths::preview_session_settings,
        paths::list_group_policies,
        paths::get_group_policy,
        paths::put_group_policy,
        paths::delete_group_policy,
        paths::preview_group_policy,
        paths::list_users,
        paths::create_user,
        paths::show_user,
        paths::update_user,
        paths::delete_user,
        paths::list_clients,
        paths::create_client,
        paths::show_client,
        paths::replace_client,
        paths::delete_client,
        paths::rotate_client_secret,
        paths::list_keys,
        paths::rotate_key,
        paths::list_user_sessions,
        paths::revoke_user_sessions,
        paths::revoke_session,
        paths::list_audit,
        paths::healthz,
        paths::readyz,
        paths::metrics,
        paths::ssf_configuration,
        paths::get_ssf_stream,
        paths::create_ssf_stream,
        paths::patch_ssf_stream,
        paths::replace_ssf_stream,
        paths::delete_ssf_stream,
        paths::get_ssf_status,
        paths::set_ssf_status,
        paths::verify_ssf_stream,
        paths::poll_ssf,
    ),
    components(schemas(
        schemas::OAuthError,
        schemas::ApiError,
        schemas::BearerError,
        crate::token::claims::AccessClaims,
        crate::token::claims::IdClaims,
        crate::worker::backchannel::LogoutClaims
    ),
    responses(
        responses::ApiBadRequest,
        responses::ApiUnauthorized,
        responses::ApiForbidden,
        responses::ApiNotFound,
        responses::ApiConflict,
        responses::ApiServerError,
        responses::OAuthBadRequest,
        responses::InvalidClient,
        responses::RequestTooLarge,
        responses::TemporarilyUnavailable,
        responses::HashingBusy,
        responses::OAuthServerError,
        responses::CorsPreflight
    )),
    modifiers(&Described)
)]
struct ApiDoc;

/// The tags, the server and the security schemes: what the derive cannot say.
struct Described;

/// The document's description: the two clocks every answer speaks of.
const DESCRIPTION: &str = "Every user session runs on two clocks: the idle clock, restarted by every refresh-token \
    rotation (and by sign-in or single sign-on at the issuer), ends the session after `idle_timeout` without \
    activity, and the absolute clock, started at sign-in (`auth_time`), ends it after `max_lifetime` however active \
    it is (the `remember_me_*` values apply when \"Remember me\" was ticked, and a client's own `session` override \
    can only shorten them). Access tokens expire at `min(now + access_token_ttl, idle deadline, absolute deadline)`, \
    and token responses report the seconds left on the earlier deadline as `refresh_expires_in` and on the absolute \
    one as `session_expires_in`.";

const TAGS: &[(&str, &str)] = &[
    ("discovery", "OIDC Discovery / RFC 8414 metadata, the JWKS and this document."),
    (
        "authorization",
        "The browser side of the authorization code flow (RFC 6749 4.1, OIDC Core 3.1.2, RFC 7636, RFC 9207). \
         Answers are HTML pages or redirects, never JSON. Every HTML page carries `Content-Security-Policy`, \
         `X-Frame-Options: DENY`, `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and \
         `X-Content-Type-Options: nosniff`.",
    ),
    ("token", "The token endpoint (RFC 6749 3.2)."),
    ("userinfo", "OIDC Core 5.3, protected by a bearer access token (RFC 6750)."),
    ("revocation", "RFC 7009 token revocation."),
    ("introspection", "RFC 7662 token introspection, for confidential clients."),
    (
        "logout",
        "OIDC RP-Initiated Logout 1.0 (`/logout`, HTML pages and redirects). tenure also sends OIDC Back-Channel \
         Logout 1.0 logout tokens to clients' `backchannel_logout_uri` (the `backchannelLogout` webhook).",
    ),
    (
        "account",
        "A user's own sessions (JSON). Bearer access token of the user, issued by tenure and addressed to it; no \
         permission needed. Errors are `{\"error\", \"message\"}` (`ApiError`); every answer has \
         `Cache-Control: no-store`; timestamps are RFC 3339 in UTC.",
    ),
    (
        "admin",
        "Session settings (with explain and preview), users, clients, signing keys, users' sessions and the audit \
         log (JSON). Bearer access token issued by tenure and addressed to it, whose `permissions` claim holds \
         `system:administer` (settings, clients, keys, everything) or `users:edit` (users and their sessions, the \
         audit log; giving or changing a user's `permissions` needs `system:administer`); `system:administer` \
         includes `users:edit`. Users and clients declared in the config file are listed read-only \
         (`\"source\": \"config\"`; changing one is `409 conflict`). 401 without a valid token, 403 without the \
         permission (checked before anything is looked up). Errors are `{\"error\", \"message\"}` (`ApiError`); \
         every answer has `Cache-Control: no-store`; timestamps are RFC 3339 in UTC; durations integer seconds.",
    ),
    (
        "feed",
        "The revocation feed (SPEC 13): an OpenID Shared Signals Framework 1.0 transmitter. CAEP \
         `session-revoked` Security Event Tokens (RFC 8417, `typ: secevent+jwt`, RS256) for every revoked family, \
         session and user, by poll (RFC 8936) or push (RFC 8935). Every endpoint but the metadata takes a \
         client-credentials token of the receiving client with `ssf.manage` (changes) or `ssf.read` (reads and \
         polling), a scope the client must still be allowed. One stream per receiving client. Errors are \
         `{\"error\", \"message\"}` (`ApiError`). See feed.md.",
    ),
    (
        "operations",
        "Health, readiness and metrics. Unknown paths answer `404` with \
         `{\"error\":\"not_found\",\"message\":\"no such endpoint\"}`; a known path with a method it does not \
         serve answers `405` with an `Allow` header and an empty body.",
    ),
];

impl Modify for Described {
    fn modify(&self, doc: &mut Document) {
        // OpenAPI 3.1 `webhooks`: a root member utoipa's type does not have,
        // written through its root-level extension map (serialised flat).
        doc.extensions.get_or_insert_with(Default::default).insert("webhooks".to_owned(), webhooks::webhooks());
        doc.info.description = Some(DESCRIPTION.to_owned());
        doc.tags = Some(
            TAGS.iter()
                .map(|(name, description)| TagBuilder::new().name(*name).description(Some(*description)).build())
                .collect(),
        );
        doc.servers = Some(vec![
            ServerBuilder::new()
                .url("{issuer}")
                .description(Some(
                    "The issuer: `issuer` from the configuration, or `http://` + the bound address when it is not set.",
                ))
                .parameter("issuer", ServerVariableBuilder::new().default_value("http://127.0.0.1:8080"))
                .build(),
        ]);
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = |scheme: HttpAuthScheme, format: Option<&str>, description: &str| {
            let mut http = HttpBuilder::new().scheme(scheme).description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            "clientSecretBasic",
            scheme(
                HttpAuthScheme::Basic,
                None,
                "`client_secret_basic` (RFC 6749 2.3.1): `client_id` and `client_secret`, each form-urlencoded, \
                 joined by `:` and base64 encoded. Alternatives without this header: `client_secret_post` \
                 (`client_id` + `client_secret` in the body) or `none` (`client_id` only, public clients).",
            ),
        );
        components.add_security_scheme(
            "bearerAuth",
            scheme(
                HttpAuthScheme::Bearer,
                Some("JWT"),
                "An access token issued by tenure (RFC 9068 JWT, `typ: at+jwt`), in `Authorization: Bearer <token>` \
                 (RFC 6750 2.1). A DPoP-bound token is refused in this scheme everywhere (userinfo, admin and \
                 account API).",
            ),
        );
        // OpenAPI's `http` schemes are IANA's list, which has no DPoP: the
        // header, described.
        let dpop = ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "A DPoP-bound access token (RFC 9449 7.1) in `Authorization: DPoP <token>`, with a `DPoP` proof \
             header carrying `ath`. Accepted at `/userinfo`; the admin and account API accept only `Bearer`.",
        ));
        components.add_security_scheme("dpopAuth", SecurityScheme::ApiKey(dpop));
    }
}

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// `GET /openapi.json`: the document, no authentication (like discovery).
pub async fn serve() -> Response {
    Json(document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::document;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");

    /// `docs/openapi.yaml` is the generated document. After changing an
    /// endpoint or a view type, regenerate it with
    /// `TENURE_WRITE_OPENAPI=1 cargo test --lib openapi` and commit it.
    #[test]
    fn committed_document_is_the_generated_one() {
        let generated = document().to_yaml().unwrap();
        if std::env::var_os("TENURE_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap();
        assert!(
            committed == generated,
            "docs/openapi.yaml differs from the document the code generates; \
             regenerate it with `TENURE_WRITE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
    }

    /// The `(method, path)` pairs `src/http/mod.rs` routes, read from its
    /// source: `.route("/path", get(..).post(..))`, and `options` for the
    /// routes wrapped in `with_cors` (which answers the preflight).
    fn routed() -> Vec<(String, String)> {
        let source = include_str!("../mod.rs");
        let start = source.find("fn router(").unwrap();
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let mut routes = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let path = chunk.strip_prefix('"').unwrap();
            let path = &path[..path.find('"').unwrap()];
            // Up to the next route: the method chain.
            let methods = &chunk[path.len() + 2..];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = |m: &str| methods.contains(&format!("({m}(")) || methods.contains(&format!(".{m}("));
                if called(method) || methods.trim_start_matches([',', ' ', '\n']).starts_with(&format!("{method}(")) {
                    routes.push((method.to_owned(), path.to_owned()));
                }
            }
            if methods.contains("with_cors(") {
                routes.push(("options".to_owned(), path.to_owned()));
            }
        }
        routes
    }

    #[test]
    fn every_route_of_the_router_is_described() {
        let doc = serde_json::to_value(document()).unwrap();
        let routes = routed();
        assert!(routes.len() > 50, "the router's routes were not found: {routes:?}");
        let missing: Vec<String> = routes
            .iter()
            .filter(|(method, path)| doc["paths"][path.as_str()][method.as_str()].is_null())
            .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document (src/http/openapi/paths.rs): {missing:?}"
        );
        // And nothing described that is not routed.
        let described: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(described, routes.len(), "the document describes operations the router does not have");
    }

    /// The requests tenure sends (feed push, back-channel logout) are
    /// described as OpenAPI 3.1 webhooks, with the logout token's claims.
    #[test]
    fn the_requests_tenure_sends_are_webhooks() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["webhooks"]["ssfPush"]["post"]["operationId"], "ssfPush");
        let logout = &doc["webhooks"]["backchannelLogout"]["post"];
        assert_eq!(
            logout["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["required"][0],
            "logout_token"
        );
        assert!(doc["components"]["schemas"]["LogoutClaims"]["properties"]["sid"].is_object());
    }

    /// Every `$ref` names a component the document has.
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = serde_json::to_value(document()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        let dangling: Vec<&str> = found
            .into_iter()
            .filter(|r| {
                let pointer = r.strip_prefix('#').unwrap_or(r);
                doc.pointer(pointer).is_none()
            })
            .collect();
        assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
    }
}
