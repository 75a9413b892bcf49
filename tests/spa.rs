//! A single-page app in Chromium signs in through tenure with oidc-client-ts
//! (SPEC 1, "Single-page apps"), configured with nothing but the issuer URL
//! and its client settings: discovery, the authorization code flow with
//! PKCE, userinfo, a refresh, and RP-initiated logout, each across origins
//! (the app is served on its own loopback port), so CORS must be right.
//!
//! Skipped with one line when Chromium is not installed (see
//! `support::browser`).

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::support::browser::Chromium;
use crate::support::kit::spa_client;
use crate::support::{Server, config_with, eventually};

const INDEX_HTML: &str = include_str!("fixtures/spa/index.html");
const APP_JS: &str = include_str!("fixtures/spa/app.js");
const OIDC_CLIENT_TS: &str = include_str!("fixtures/spa/oidc-client-ts.min.js");

/// A static site on its own loopback port, stopped when dropped.
pub(crate) struct Site {
    origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    pub(crate) async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        (listener, origin)
    }

    pub(crate) fn serve(listener: tokio::net::TcpListener, origin: String, app: Router) -> Site {
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Site { origin, task }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn file(content_type: &'static str, body: impl Into<String>) -> Response {
    let mut response = body.into().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The app of tests/fixtures/spa, its `/config.js` naming `authority`.
fn spa(origin: &str, authority: &str) -> Router {
    spa_with(origin, authority, false)
}

/// The app, with oidc-client-ts's `dpop` option when `dpop` (tests/dpop.rs).
pub(crate) fn spa_with(origin: &str, authority: &str, dpop: bool) -> Router {
    let settings = serde_json::json!({
        "authority": authority,
        "client_id": "spa",
        "redirect_uri": format!("{origin}/callback"),
        "post_logout_redirect_uri": format!("{origin}/signed-out"),
        "dpop": dpop,
    });
    let config_js = format!("window.TENURE_SPA = {settings};\n");
    let index = || async { file("text/html; charset=utf-8", INDEX_HTML) };
    Router::new()
        .route("/", get(index))
        .route("/callback", get(index))
        .route("/signed-out", get(index))
        .route("/app.js", get(|| async { file("text/javascript; charset=utf-8", APP_JS) }))
        .route("/oidc-client-ts.min.js", get(|| async { file("text/javascript; charset=utf-8", OIDC_CLIENT_TS) }))
        .route("/config.js", get(move || async move { file("text/javascript; charset=utf-8", config_js) }))
}

fn tenure_config(spa_origin: &str) -> String {
    config_with(&format!(
        r#"{}name = "The SPA"
post_logout_redirect_uris = ["{spa_origin}/signed-out"]

[[users]]
username = "alice"
password = "alice-password"
name = "Alice Liddell"
email = "alice@example.com"
"#,
        spa_client(&format!("{spa_origin}/callback"), spa_origin)
    ))
}

/// The tokens oidc-client-ts holds in the page.
async fn tokens_in_page(browser: &Chromium) -> (String, String) {
    let tokens = browser.execute("return window.currentTokens();", vec![]).await;
    let access = tokens["access_token"].as_str().unwrap_or_else(|| panic!("no access token in {tokens}")).to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh token in {tokens}")).to_owned();
    (access, refresh)
}

#[tokio::test]
async fn oidc_client_ts_signs_in_loads_userinfo_refreshes_and_signs_out_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let (listener, spa_origin) = Site::bind().await;
    let server = Server::start(&tenure_config(&spa_origin), &[]);
    let site = Site::serve(listener, spa_origin.clone(), spa(&spa_origin, &server.base));

    // The app starts signed out; "Sign in" fetches discovery (cross-origin)
    // and sends the browser to tenure's sign-in page.
    browser.goto(&site.url("/")).await;
    browser.wait_for_text("#status", "anonymous").await;
    // The console log, read at each step: nothing may go wrong on the way.
    let mut errors = browser.console_errors().await;
    browser.click("#sign-in").await;
    browser.wait_for("input[name=username]").await;
    let at_tenure = browser.url().await;
    assert_eq!(at_tenure.origin().ascii_serialization(), server.base, "the sign-in page is tenure's");
    assert_eq!(at_tenure.path(), "/authorize");
    let query: std::collections::HashMap<_, _> = at_tenure.query_pairs().into_owned().collect();
    assert_eq!(query.get("code_challenge_method").map(String::as_str), Some("S256"), "PKCE: {at_tenure}");

    // Sign in as a person would.
    browser.fill("input[name=username]", "alice").await;
    browser.fill("input[name=password]", "alice-password").await;
    browser.click("button[type=submit]").await;

    // Back at the app: the code was exchanged (cross-origin POST /token) and
    // userinfo loaded (cross-origin GET with a bearer token, preflighted):
    // name and email are only in the userinfo answer.
    browser.wait_for_text("#status", "signed in").await;
    errors.extend(browser.console_errors().await);
    assert_eq!(browser.text("#sub").await, "alice");
    assert_eq!(browser.text("#name").await, "Alice Liddell");
    assert_eq!(browser.text("#email").await, "alice@example.com");
    assert_eq!(browser.url().await.as_str(), site.url("/"));
    let (access_1, refresh_1) = tokens_in_page(&browser).await;

    // A refresh: signinSilent uses the refresh_token grant, and the token
    // rotates.
    browser.click("#refresh").await;
    browser.wait_for_text("#status", "refreshed").await;
    errors.extend(browser.console_errors().await);
    assert_eq!(browser.text("#refreshes").await, "1");
    assert_eq!(browser.text("#email").await, "alice@example.com");
    let (access_2, refresh_2) = tokens_in_page(&browser).await;
    assert_ne!(refresh_2, refresh_1, "the refresh token rotated");
    assert_ne!(access_2, access_1, "a new access token");
    let userinfo = |token: String| {
        let request = server.http.get(server.url("/userinfo")).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(userinfo(access_2.clone()).await, 200, "the page's access token works");

    // Sign out: RP-initiated logout with id_token_hint and
    // post_logout_redirect_uri, back to the app. tenure asks for no
    // confirmation only when a valid id_token_hint names the browser's
    // session, so arriving straight back proves the hint.
    browser.click("#sign-out").await;
    browser.wait_for_text("#status", "signed out").await;
    errors.extend(browser.console_errors().await);
    assert_eq!(browser.url().await.path(), "/signed-out");
    let held = browser.execute("return window.currentTokens();", vec![]).await;
    assert_eq!(held, serde_json::Value::Null, "the library forgot the user");

    // At the server, the session is over: its refresh token and access token
    // are dead.
    let refreshed = server
        .post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", &refresh_2)],
        )
        .await;
    assert_eq!(refreshed.status(), 400);
    let body: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(userinfo(access_2).await, 401, "the access token died with the session");

    // And nothing went wrong in the browser along the way (no CORS refusal,
    // no CSP violation, no script error).
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

/// The harness sees what the console tests assert never happens: script
/// errors and Content Security Policy violations.
#[tokio::test]
async fn the_browser_harness_reports_console_errors_and_csp_violations() {
    let Some(browser) = Chromium::start().await else { return };
    let (listener, origin) = Site::bind().await;
    let page = |csp: &'static str, html: &'static str| {
        move || async move {
            let mut response = file("text/html; charset=utf-8", html);
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            response
        }
    };
    let app = Router::new()
        .route(
            "/clean",
            get(page(
                "default-src 'none'; img-src data:",
                "<!doctype html><title>clean</title><link rel=icon href=\"data:,\"><p id=ok>ok</p>",
            )),
        )
        .route(
            "/dirty",
            get(page(
                "default-src 'none'; img-src data:; script-src 'self'",
                "<!doctype html><title>dirty</title><link rel=icon href=\"data:,\">\
                 <script>document.title = 'inline ran';</script><script src=\"/boom.js\"></script><p id=ok>ok</p>",
            )),
        )
        .route("/boom.js", get(|| async { file("text/javascript", "console.error('boom from the page');") }));
    let site = Site::serve(listener, origin, app);

    browser.goto(&site.url("/clean")).await;
    browser.wait_for("#ok").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "a clean page logs nothing: {errors:#?}");

    browser.goto(&site.url("/dirty")).await;
    browser.wait_for("#ok").await;
    // The log reaches chromedriver asynchronously; give it a moment.
    let seen = std::cell::RefCell::new(Vec::new());
    eventually(Duration::from_secs(2), || async {
        let more = browser.console_errors().await;
        seen.borrow_mut().extend(more);
        seen.borrow().len() >= 2
    })
    .await;
    let errors = seen.into_inner();
    let csp =
        errors.iter().find(|e| e.message.contains("Content Security Policy")).unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(csp.source, "security", "{csp:?}");
    assert!(errors.iter().any(|e| e.message.contains("boom from the page")), "{errors:#?}");
    assert_eq!(browser.execute("return document.title;", vec![]).await, "dirty", "the inline script was blocked");
    browser.close().await;
}
