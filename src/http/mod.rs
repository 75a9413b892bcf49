//! The only code that knows axum: the router, the state, extractors, the one
//! error-to-response mapping, and one file per endpoint group.

pub mod account;
pub mod admin;
pub mod api;
pub mod audit;
pub mod authorize;
pub mod bearer;
pub mod console;
pub mod cookies;
pub mod cors;
pub mod device;
pub mod discovery;
pub mod error;
pub mod form;
pub mod health;
pub mod introspect;
pub mod logout;
pub mod openapi;
pub mod pages;
pub mod revoke;
pub mod serve;
pub mod sessions;
pub mod settings;
pub mod ssf;
pub mod token;
pub mod userinfo;

use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};

pub use crate::service::AppState;

use crate::telemetry::{HttpLabels, RouteLabels};

/// The router's state: the service's [`AppState`]. Handlers take it, or
/// the console's view of it, as an axum substate: `State<AppState>` or
/// `State<ConsoleState>`. (Nothing per process, SPEC 12: the console's
/// sessions are in the store.)
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
}

impl FromRef<HttpState> for AppState {
    fn from_ref(state: &HttpState) -> AppState {
        state.app.clone()
    }
}

/// The whole HTTP surface, ready for `serve` or `oneshot` in tests. Each
/// router keeps its own console sessions (`serve` builds one).
pub fn router(state: AppState) -> Router {
    let https = state.is_https();
    let router = Router::new()
        .route(
            "/.well-known/openid-configuration",
            with_cors(get(discovery::openid_configuration), &state, cors::PUBLIC_METADATA),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            with_cors(get(discovery::oauth_authorization_server), &state, cors::PUBLIC_METADATA),
        )
        .route("/jwks.json", with_cors(get(discovery::jwks), &state, cors::PUBLIC_METADATA))
        .route("/.well-known/ssf-configuration", get(ssf::configuration))
        .route(
            "/ssf/stream",
            get(ssf::get_stream)
                .post(ssf::create_stream)
                .patch(ssf::patch_stream)
                .put(ssf::replace_stream)
                .delete(ssf::delete_stream),
        )
        .route("/ssf/status", get(ssf::get_status).post(ssf::set_status))
        .route("/ssf/verify", post(ssf::verify))
        .route("/ssf/poll", post(ssf::poll))
        .route("/authorize", get(authorize::authorize).post(authorize::authorize_post))
        .route("/login", post(authorize::login))
        .route("/login/session-limit", post(authorize::session_limit))
        .route("/token", with_cors(post(token::token), &state, cors::TOKEN))
        .route("/device_authorization", post(device::device_authorization))
        .route("/device", get(device::page).post(device::enter))
        .route("/device/decision", post(device::decision))
        .route("/device/login", post(device::login))
        .route("/revoke", with_cors(post(revoke::revoke), &state, cors::CLIENT_POST))
        .route("/introspect", post(introspect::introspect))
        .route("/admin/settings/session", get(settings::get).put(settings::put).delete(settings::delete))
        .route("/admin/settings/session/explain", get(admin::explain))
        .route("/admin/settings/session/preview", post(settings::preview))
        .route("/admin/settings/session/groups", get(settings::list_groups))
        .route(
            "/admin/settings/session/groups/{name}",
            get(settings::get_group).put(settings::put_group).delete(settings::delete_group),
        )
        .route("/admin/settings/session/groups/{name}/preview", post(settings::preview_group))
        .route("/admin/users", get(admin::list_users).post(admin::create_user))
        .route("/admin/users/{username}", get(admin::show_user).patch(admin::update_user).delete(admin::delete_user))
        .route("/admin/clients", get(admin::list_clients).post(admin::create_client))
        .route("/admin/clients/{id}", get(admin::show_client).put(admin::replace_client).delete(admin::delete_client))
        .route("/admin/clients/{id}/secret", post(admin::rotate_client_secret))
        .route("/admin/keys", get(admin::list_keys))
        .route("/admin/keys/rotate", post(admin::rotate_key))
        .route("/userinfo", with_cors(get(userinfo::get).post(userinfo::post), &state, cors::USERINFO))
        .route("/logout", get(logout::get).post(logout::post))
        .route("/openapi.json", get(openapi::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/account/sessions", get(sessions::list_own).delete(sessions::revoke_own_all))
        .route("/account/sessions/{sid}", delete(sessions::revoke_own))
        .route("/account/password", post(account::change_password))
        .route("/admin/users/{username}/sessions", get(sessions::list_user).delete(sessions::revoke_user))
        .route("/admin/sessions/{sid}", delete(sessions::revoke_session))
        .route("/admin/audit", get(audit::list))
        .merge(console::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), fresh_caches))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .fallback(error::not_found)
        .layer(middleware::from_fn(refuse_nul_in_target))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(HttpState { app: state });
    if https { router.layer(middleware::map_response(strict_transport_security)) } else { router }
}

/// HSTS (RFC 6797): one year, sent on every response when the issuer is
/// https, so a browser never again tries the issuer over plain http (where
/// its cookies and codes would travel in clear). Browsers ignore it on http
/// responses, so it is harmless behind a TLS-terminating proxy.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
    );
    response
}

/// A request whose path or query holds `%00` (a NUL character once
/// decoded) is refused with 400 before any handler: no username, client id,
/// session id or parameter may hold NUL, and PostgreSQL could not store or
/// even look one up, so both stores answer alike (SPEC 7).
async fn refuse_nul_in_target(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or("", axum::http::uri::PathAndQuery::as_str);
    if target.as_bytes().windows(3).any(|w| w == b"%00") {
        return axum::response::IntoResponse::into_response(crate::service::ServiceError::invalid(
            "the request path or query has a NUL character (%00); no name or value here may hold one",
        ));
    }
    next.run(req).await
}

/// `route` answering browsers by `policy` (see [`cors`]).
fn with_cors(route: MethodRouter<HttpState>, state: &AppState, policy: cors::CorsPolicy) -> MethodRouter<HttpState> {
    route.layer(middleware::from_fn_with_state((state.clone(), policy), cors::cors))
}

/// SPEC 12: settings and clients changed at any replica are in force at
/// the very next request (`service::fresh`). Every routed request but the
/// ones that read neither (health, metrics, published keys and metadata),
/// and `/token` and `/introspect`, whose use cases make sure of it
/// themselves at less cost (with the family they read, or beside the work).
async fn fresh_caches(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    let reads_neither = matches!(route, "/healthz" | "/readyz" | "/metrics" | "/jwks.json" | "/openapi.json")
        || matches!(route, "/token" | "/introspect")
        || route.starts_with("/.well-known/")
        || route.starts_with("/assets/");
    if !reads_neither {
        state.fresh().await;
    }
    next.run(req).await
}

/// Count and time every routed request; log it without its URI.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = crate::telemetry::method_label(req.method()).to_owned();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.http_duration.get_or_create(&RouteLabels { route: route.clone() }).observe(elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    state.metrics.http_requests.get_or_create(&HttpLabels { method, route, status: status.to_string() }).inc();
    response
}
