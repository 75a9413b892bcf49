//! The web console under `/console` (SPEC 9): server-rendered pages
//! (askama templates, checked at compile time and escaped by default), one
//! stylesheet and one small script embedded in the binary under
//! content-hashed names, forms that work without JavaScript
//! (post/redirect/get), a CSRF token on every change.
//!
//! The console signs in as the built-in client `console` (see [`session`])
//! and calls the same use cases as the admin API (`crate::service`), with the
//! permissions of the viewer's access token: it adds no rule of its own.

mod account;
mod audit;
mod clients;
mod extract;
mod home;
mod keys;
mod page;
mod session;
mod settings;
mod setup;
mod users;
pub(crate) mod view;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{FromRef, Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::http::HttpState;
use crate::service::AppState;

/// What console handlers take (`State<ConsoleState>`, an axum substate of
/// [`HttpState`]): the service's state, which it derefs to. (The console's
/// signed-in sessions are in the store, sealed: `session.rs`.)
#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
}

impl std::ops::Deref for ConsoleState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.app
    }
}

impl FromRef<HttpState> for ConsoleState {
    fn from_ref(state: &HttpState) -> ConsoleState {
        ConsoleState { app: state.app.clone() }
    }
}

/// The console pages' policy: only our own script and stylesheet, no inline
/// code, forms only to us (the sign-in redirect chain stays on this origin:
/// `/console` -> `/authorize` -> `/login` -> `/console/callback`), no
/// framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form body the console reads.
pub const FORM_LIMIT: usize = 64 * 1024;

/// An embedded asset and its content-hashed URL.
pub struct Asset {
    pub path: String,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Asset {
    let hash = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = hash.as_ref().iter().take(6).map(|b| format!("{b:02x}")).collect();
    Asset { path: format!("/console/assets/{stem}.{hex}.{ext}"), body, content_type }
}

pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    asset("console", "css", include_bytes!("../../../assets/console/console.css"), "text/css; charset=utf-8")
});
pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    asset("console", "js", include_bytes!("../../../assets/console/console.js"), "text/javascript; charset=utf-8")
});

/// The console's routes, with its security headers.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/console", get(home::home))
        .route("/console/", get(home::home))
        .route("/console/callback", get(home::callback))
        .route("/console/sign-out", post(home::sign_out))
        .route("/console/signed-out", get(home::signed_out))
        .route("/console/setup", get(setup::page).post(setup::create))
        .route("/console/settings", get(settings::settings).post(settings::settings_save))
        .route("/console/settings/reset", post(settings::settings_reset))
        .route("/console/settings/groups", post(settings::group_save))
        .route("/console/settings/groups/{name}/delete", post(settings::group_delete))
        .route("/console/users", get(users::users).post(users::user_create))
        .route("/console/users/{username}", get(users::user))
        .route("/console/users/{username}/{action}", post(users::user_action))
        .route("/console/users/{username}/sessions/revoke-all", post(users::user_revoke_all))
        .route("/console/users/{username}/sessions/{sid}/revoke", post(users::user_revoke_session))
        .route("/console/clients", get(clients::clients).post(clients::client_create))
        .route("/console/clients/new", get(clients::client_new))
        .route("/console/clients/{id}", get(clients::client).post(clients::client_save))
        .route("/console/clients/{id}/secret", post(clients::client_secret))
        .route("/console/clients/{id}/delete", post(clients::client_delete))
        .route("/console/keys", get(keys::keys))
        .route("/console/keys/rotate", post(keys::keys_rotate))
        .route("/console/audit", get(audit::audit))
        .route("/console/account", get(account::account))
        .route("/console/account/sessions/{sid}/revoke", post(account::account_revoke))
        .route("/console/account/sign-out-everywhere", post(account::account_sign_out_everywhere))
        .route("/console/account/password", post(account::account_password))
        .route("/console/{*rest}", get(home::not_found).post(home::not_found))
        .layer(middleware::from_fn(page_headers))
        // Console forms are small; a larger body is refused (413).
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
        .route("/console/assets/{name}", get(serve_asset))
}

/// Every console page: strict CSP, no framing, no sniffing, no referrer,
/// never cached (so the back button shows nothing after signing out).
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `/console/assets/{name}`: the embedded assets by their hashed names, cached
/// for a year (a new build has new names).
async fn serve_asset(Path(name): Path<String>) -> Response {
    let path = format!("/console/assets/{name}");
    let Some(asset) = [&*CSS, &*JS].into_iter().find(|a| a.path == path) else {
        let mut response = (StatusCode::NOT_FOUND, "no such asset").into_response();
        response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        return response;
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        asset.body,
    )
        .into_response()
}
