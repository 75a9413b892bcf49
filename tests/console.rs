//! The web console at `/console` (SPEC 9) over HTTP, as a browser without
//! JavaScript sees it: the sign-in redirects of the built-in `console`
//! client, the security headers, CSRF and permission refusals,
//! post/redirect/get, and sign-out. Browser tests are in console_browser.rs.

use serde_json::Value;

use crate::support::flow::{Browser, input_value, location, query_param};
use crate::support::kit::{self, ROOT_AUTOMATION, call, root_token, user, web_client};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

/// Users of every kind, and an automation client with `system:administer`
/// for reading the admin API.
pub fn config() -> String {
    config_with(&format!(
        "{ROOT_AUTOMATION}{}{}{}{}",
        web_client(&["openid", "profile"]),
        user("root", &["system:administer"]),
        user("carol", &["users:edit"]),
        user("alice", &[])
    ))
}

/// `GET /admin/settings/session` as the automation client.
pub async fn admin_settings(server: &Server) -> Value {
    let token = root_token(server).await;
    let resp = server.http.get(server.url("/admin/settings/session")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Open `path` signed out, sign in on tenure's sign-in page, and follow the
/// console's callback; the browser then holds a console session. Returns the
/// page the callback sent the browser to.
pub async fn sign_in(server: &Server, browser: &Browser, path: &str, username: &str, password: &str) -> String {
    let first = browser.get(server, path).await;
    assert_eq!(first.status(), 303, "a signed-out visitor of {path} is sent to sign in");
    let authorize = location(&first).unwrap();
    assert!(authorize.starts_with("/authorize?"), "to tenure's own /authorize, not {authorize}");
    let page = browser.get(server, &authorize).await;
    assert_eq!(page.status(), 200, "the sign-in page");
    let page = page.text().await.unwrap();
    let posted = browser.submit_sign_in(server, &page, username, password, false).await;
    assert_eq!(posted.status(), 303, "signed in");
    let back = browser.get(server, &location(&posted).unwrap()).await;
    assert_eq!(back.status(), 302, "/authorize redirects to the console's callback");
    let callback = location(&back).unwrap();
    assert!(callback.starts_with(&server.url("/console/callback?")), "{callback}");
    let done = browser.http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "the callback starts the console session");
    location(&done).unwrap()
}

/// The CSRF token of the first form on `path`.
pub async fn csrf(server: &Server, browser: &Browser, path: &str) -> String {
    let page = browser.get(server, path).await;
    assert_eq!(page.status(), 200, "GET {path}");
    input_value(&page.text().await.unwrap(), "csrf").expect("every console form carries a csrf input")
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The settings form as the page fills it in by default (SPEC 3 defaults),
/// with `changes` applied.
pub fn settings_form(csrf: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = form(&[
        ("csrf", csrf),
        ("idle_enabled", "on"),
        ("idle_choice", "custom"),
        ("idle_custom_minutes", "30"),
        ("max_days", "0"),
        ("max_hours", "12"),
        ("max_minutes", "0"),
        ("rm_idle_enabled", "on"),
        ("rm_idle_choice", "custom"),
        ("rm_idle_custom_minutes", "10080"),
        ("rm_max_days", "20"),
        ("rm_max_hours", "0"),
        ("rm_max_minutes", "0"),
        ("access_token_minutes", "30"),
        ("grace_seconds", "0"),
    ]);
    for (k, v) in changes {
        pairs.retain(|(name, _)| name != k);
        pairs.push(((*k).to_owned(), (*v).to_owned()));
    }
    pairs
}

async fn post(server: &Server, browser: &Browser, path: &str, pairs: &[(String, String)]) -> reqwest::Response {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post_form(server, path, &refs).await
}

#[tokio::test]
async fn a_signed_out_visitor_signs_in_through_the_console_client_with_pkce_and_comes_back() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let first = browser.get(&server, "/console/users?query=car").await;
    assert_eq!(first.status(), 303);
    let authorize = location(&first).unwrap();
    assert_eq!(query_param(&authorize, "client_id").as_deref(), Some("console"));
    assert_eq!(query_param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(&authorize, "redirect_uri"), Some(server.url("/console/callback")));
    assert_eq!(query_param(&authorize, "scope").as_deref(), Some("openid profile email admin"));
    assert!(query_param(&authorize, "state").is_some_and(|s| s.len() >= 20));

    let landed = sign_in(&server, &browser, "/console/users?query=car", "carol", "carol-password").await;
    assert_eq!(landed, "/console/users?query=car", "back to the page asked for");
    let page = browser.get(&server, &landed).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>Users</h1>"), "{html}");
    assert!(html.contains(">carol<"), "the search found carol");
    assert!(!html.contains(">alice<"), "and only carol");
}

#[tokio::test]
async fn the_callback_refuses_a_state_it_did_not_issue() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let first = browser.get(&server, "/console").await;
    assert_eq!(first.status(), 303);
    let forged = browser.get(&server, "/console/callback?code=x&state=forged").await;
    assert_eq!(forged.status(), 400);
    assert!(forged.text().await.unwrap().contains("Sign-in expired"));
    let stranger = Browser::new();
    let resp = stranger.get(&server, "/console/callback?code=x&state=y").await;
    assert_eq!(resp.status(), 400, "no sign-in was started in this browser");
}

#[tokio::test]
async fn console_pages_send_a_strict_csp_nosniff_no_referrer_and_no_store_and_assets_are_hashed_and_cached() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/account", "alice", "alice-password").await;
    let page = browser.get(&server, "/console/account").await;
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let csp = header("content-security-policy");
    for directive in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]
    {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");

    let css = html.split("href=\"/console/assets/").nth(1).and_then(|s| s.split('"').next()).unwrap();
    assert!(css.starts_with("console.") && css.ends_with(".css") && css.len() > "console..css".len() + 8, "{css}");
    let asset = browser.get(&server, &format!("/console/assets/{css}")).await;
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    let js = html.split("src=\"/console/assets/").nth(1).and_then(|s| s.split('"').next()).unwrap();
    let script = browser.get(&server, &format!("/console/assets/{js}")).await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(browser.get(&server, "/console/assets/console.0000.css").await.status(), 404, "an old name");

    // Signed out, a page is a redirect, never content.
    let signed_out = Browser::new().get(&server, "/console/settings").await;
    assert_eq!(signed_out.status(), 303);
    assert_eq!(signed_out.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_user_without_permissions_cannot_reach_admin_pages_or_post_to_them() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    assert_eq!(sign_in(&server, &browser, "/console", "alice", "alice-password").await, "/console");
    let home = browser.get(&server, "/console").await;
    assert_eq!(location(&home).as_deref(), Some("/console/account"), "everyone has My sessions");
    let account = browser.get(&server, "/console/account").await.text().await.unwrap();
    assert!(account.contains("My sessions"));
    for link in ["Session settings", ">Users<", "Clients", "Signing keys", "Audit log"] {
        assert!(!account.contains(link), "no {link} link for alice");
    }
    for path in [
        "/console/settings",
        "/console/users",
        "/console/users/root",
        "/console/clients",
        "/console/keys",
        "/console/audit",
    ] {
        let resp = browser.get(&server, path).await;
        assert_eq!(resp.status(), 403, "{path}");
        assert!(resp.text().await.unwrap().contains("You cannot open this page"), "{path}");
    }
    let token = csrf(&server, &browser, "/console/account").await;
    let resp = post(&server, &browser, "/console/settings", &settings_form(&token, &[("idle_choice", "3600")])).await;
    assert_eq!(resp.status(), 403);
    let resp = post(
        &server,
        &browser,
        "/console/users/root/sessions/revoke-all",
        &form(&[("csrf", &token), ("confirmed", "1")]),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(admin_settings(&server).await["sources"]["idle_timeout"], "default", "nothing changed");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let token = csrf(&server, &browser, "/console/settings").await;
    let mut pairs = settings_form(&token, &[("idle_choice", "3600")]);
    pairs.retain(|(k, _)| k != "csrf");
    let resp = post(&server, &browser, "/console/settings", &pairs).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("This form has expired"));
    let other = Browser::new();
    sign_in(&server, &other, "/console/settings", "root", "root-password").await;
    let foreign = csrf(&server, &other, "/console/settings").await;
    assert_ne!(foreign, token, "each console session has its own token");
    let resp = post(&server, &browser, "/console/settings", &settings_form(&foreign, &[("idle_choice", "3600")])).await;
    assert_eq!(resp.status(), 403, "another session's token");
    let huge = "x".repeat(100 * 1024);
    let resp =
        post(&server, &browser, "/console/settings", &settings_form(&token, &[("padding", huge.as_str())])).await;
    assert_eq!(resp.status(), 413, "console forms are small");
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 1800);
    assert_eq!(settings["sources"]["idle_timeout"], "default");
}

#[tokio::test]
async fn saving_settings_redirects_to_the_page_which_shows_the_new_values_and_their_source() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let token = csrf(&server, &browser, "/console/settings").await;
    let pairs = settings_form(
        &token,
        &[("idle_choice", "10800"), ("max_days", "1"), ("max_hours", "2"), ("max_minutes", "30")],
    );
    let resp = post(&server, &browser, "/console/settings", &pairs).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    assert_eq!(location(&resp).as_deref(), Some("/console/settings"));
    let page = browser.get(&server, "/console/settings").await.text().await.unwrap();
    assert!(page.contains("Session settings saved."));
    assert!(page.contains(r#"<option value="10800" selected>3 hours</option>"#), "{page}");
    assert_eq!(input_value(&page, "max_days").as_deref(), Some("1"));
    assert_eq!(input_value(&page, "max_hours").as_deref(), Some("2"));
    assert_eq!(input_value(&page, "max_minutes").as_deref(), Some("30"));
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 3 * 3600);
    assert_eq!(settings["max_lifetime"], 86_400 + 2 * 3600 + 30 * 60);
    assert_eq!(settings["sources"]["idle_timeout"], "admin");
    assert_eq!(settings["sources"]["max_lifetime"], "admin");
    assert_eq!(settings["sources"]["access_token_ttl"], "default", "untouched values keep their source");
    assert_eq!(settings["sources"]["remember_me_max_lifetime"], "default");

    // The change is audited with the acting user.
    let audit = browser.get(&server, "/console/audit?kind=settings_changed").await.text().await.unwrap();
    assert!(audit.contains("<td>settings_changed</td><td>root</td>"), "{audit}");
}

#[tokio::test]
async fn an_invalid_combination_is_refused_inline_with_the_rule_and_nothing_is_saved() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let token = csrf(&server, &browser, "/console/settings").await;
    let pairs = settings_form(&token, &[("idle_choice", "86400"), ("access_token_minutes", "30")]);
    let resp = post(&server, &browser, "/console/settings", &pairs).await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("Nothing was saved"), "{page}");
    assert!(page.contains("idle_timeout"), "the message names the key: {page}");
    assert!(page.contains(r#"<option value="86400" selected>24 hours</option>"#), "the typed values stay");
    let resp = post(&server, &browser, "/console/settings", &settings_form(&token, &[("max_hours", "twelve")])).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("days, hours and minutes must be whole numbers"));
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 1800);
    assert_eq!(settings["max_lifetime"], 12 * 3600);
}

/// The settings page shows the operator's floor beside the ceiling, and a
/// value below it is refused inline, naming `session.admin_floor`.
#[tokio::test]
async fn the_console_shows_the_admin_floor_and_refuses_values_below_it() {
    let server = Server::start(&config(), &[("TENURE_SESSION_ADMIN_FLOOR", "10m")]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let page = browser.get(&server, "/console/settings").await.text().await.unwrap();
    assert!(page.contains(r#"<p class="meta" id="floor">Floor: 10 min <span class="source env">env</span>"#), "{page}");
    let token = input_value(&page, "csrf").unwrap();
    let pairs = settings_form(&token, &[("access_token_minutes", "9")]);
    let resp = post(&server, &browser, "/console/settings", &pairs).await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Nothing was saved"), "{page}");
    assert!(page.contains("access_token_ttl must be at least session.admin_floor (10m, 600 seconds)"), "{page}");
    assert_eq!(admin_settings(&server).await["access_token_ttl"], 1800);
    let resp =
        post(&server, &browser, "/console/settings", &settings_form(&token, &[("access_token_minutes", "10")])).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(admin_settings(&server).await["access_token_ttl"], 600);
}

#[tokio::test]
async fn a_change_that_ends_live_sessions_is_previewed_and_saved_only_when_confirmed() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let token = csrf(&server, &browser, "/console/settings").await;
    // Idle 5 minutes: live sessions get shorter.
    let pairs = settings_form(&token, &[("idle_custom_minutes", "5"), ("access_token_minutes", "5")]);
    let resp = post(&server, &browser, "/console/settings", &pairs).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Apply to live sessions?"), "{page}");
    assert!(page.contains("Idle timeout: 30m → 5m"), "the change itself, old to new: {page}");
    assert!(page.contains("1 sessions get shorter"), "{page}");
    assert!(page.contains("client console: 0 end now, 1 shorter"), "{page}");
    assert_eq!(admin_settings(&server).await["idle_timeout"], 1800, "nothing saved before confirming");
    assert_eq!(input_value(&page, "confirmed").as_deref(), Some("1"));
    let mut confirmed = pairs.clone();
    confirmed.push(("confirmed".into(), "1".into()));
    let resp = post(&server, &browser, "/console/settings", &confirmed).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(admin_settings(&server).await["idle_timeout"], 300);
}

#[tokio::test]
async fn reset_drops_the_values_set_in_the_console_after_confirming() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let token = csrf(&server, &browser, "/console/settings").await;
    let resp = post(&server, &browser, "/console/settings", &settings_form(&token, &[("idle_choice", "3600")])).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(admin_settings(&server).await["sources"]["idle_timeout"], "admin");
    let resp = post(&server, &browser, "/console/settings/reset", &form(&[("csrf", &token)])).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Reset session settings?"));
    assert_eq!(admin_settings(&server).await["sources"]["idle_timeout"], "admin", "not before confirming");
    let resp = post(&server, &browser, "/console/settings/reset", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 303);
    let settings = admin_settings(&server).await;
    assert_eq!(settings["sources"]["idle_timeout"], "default");
    assert_eq!(settings["idle_timeout"], 1800);
}

#[tokio::test]
async fn the_console_session_is_listed_as_client_console_and_sign_out_revokes_it() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/account", "root", "root-password").await;
    let page = browser.get(&server, "/console/account").await.text().await.unwrap();
    assert!(page.contains("<td data-label=\"Client\">console <span class=\"badge on\">This session</span>"), "{page}");
    let bearer = root_token(&server).await;
    let listed: Value = call(&server, "GET", "/admin/users/root/sessions", Some(&bearer), None).await.1;
    assert_eq!(listed["sessions"][0]["client_ids"], serde_json::json!(["console"]));

    let token = csrf(&server, &browser, "/console/account").await;
    let resp = post(&server, &browser, "/console/sign-out", &form(&[("csrf", &token)])).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some("/console/signed-out"));
    let set_cookies: Vec<&str> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(set_cookies.iter().any(|c| c.starts_with("tenure_console=;")), "the cookie is cleared: {set_cookies:?}");
    assert!(set_cookies.iter().any(|c| c.starts_with("tenure_console_signed_out=1;")), "{set_cookies:?}");
    // The browser's cache (its back/forward cache too) is cleared, by the
    // redirect and by the page it leads to.
    assert_eq!(resp.headers()["clear-site-data"], "\"cache\"");
    let landing = browser.get(&server, "/console/signed-out").await;
    assert_eq!(landing.headers()["clear-site-data"], "\"cache\"");
    assert_eq!(landing.headers()["cache-control"], "no-store");
    // The back button: the page is gone, the browser is sent to sign in, with
    // the password asked for again (the tenure session stays for other apps
    // but does not sign the console back in silently).
    let back = browser.get(&server, "/console/account").await;
    assert_eq!(back.status(), 303);
    let authorize = location(&back).unwrap();
    assert!(authorize.starts_with("/authorize?"));
    assert_eq!(query_param(&authorize, "prompt").as_deref(), Some("login"));
    let page = browser.get(&server, &authorize).await;
    assert_eq!(page.status(), 200, "the sign-in page, not a silent sign-in");
    let listed: Value = call(&server, "GET", "/admin/users/root/sessions", Some(&bearer), None).await.1;
    assert_eq!(listed["sessions"][0]["client_ids"], serde_json::json!([]), "the console family is revoked: {listed}");
    // Signing in again with the password ends the mark: a later sign-in of
    // this browser is silent again through its tenure session.
    assert_eq!(sign_in(&server, &browser, "/console/account", "root", "root-password").await, "/console/account");
    let fresh = Browser::new();
    let first = fresh.get(&server, "/console/account").await;
    assert_eq!(query_param(&location(&first).unwrap(), "prompt"), None, "a browser that never signed out");
    assert_eq!(browser.get(&server, "/console/account").await.status(), 200);
}

#[tokio::test]
async fn a_revoked_session_ends_the_console_at_once() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/account", "alice", "alice-password").await;
    assert_eq!(browser.get(&server, "/console/account").await.status(), 200);
    let token = root_token(&server).await;
    let resp = server.http.delete(server.url("/admin/users/alice/sessions")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let after = browser.get(&server, "/console/account").await;
    assert_eq!(after.status(), 303, "the console's tokens died with the session");
}

#[tokio::test]
async fn the_console_client_is_built_in_and_read_only_in_the_admin_api() {
    let server = Server::start(&config(), &[]);
    let token = root_token(&server).await;
    let shown: Value = call(&server, "GET", "/admin/clients/console", Some(&token), None).await.1;
    assert_eq!(shown["source"], "builtin");
    assert_eq!(shown["public"], true);
    assert_eq!(shown["redirect_uris"], serde_json::json!([server.url("/console/callback")]));
    let resp = server.http.delete(server.url("/admin/clients/console")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn a_config_client_named_console_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        r#"
[[clients]]
id = "console"
redirect_uris = ["http://127.0.0.1:9000/cb"]
grant_types = ["authorization_code"]
public = true
"#,
    );
    std::fs::write(dir.path().join("tenure.toml"), config).unwrap();
    let out = std::process::Command::new(crate::support::BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clients[console].id: \"console\" is reserved"), "{stderr}");
    let checked = std::process::Command::new(crate::support::BIN)
        .arg("check-config")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(!checked.status.success(), "check-config refuses it too");
}

#[tokio::test]
async fn a_helpdesk_user_revokes_a_users_sessions_after_confirming() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/users/alice", "carol", "carol-password").await;
    // alice signs in to an app.
    let refresh = kit::sign_in(&server, "alice", "alice-password", "openid").await.refresh();
    let page = browser.get(&server, "/console/users/alice").await.text().await.unwrap();
    assert!(page.contains("<td data-label=\"Client\">web"), "alice's session with client web: {page}");
    let csrf = input_value(&page, "csrf").unwrap();
    let resp = post(&server, &browser, "/console/users/alice/sessions/revoke-all", &form(&[("csrf", &csrf)])).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Revoke all sessions?"), "a confirmation page first");
    let resp = post(
        &server,
        &browser,
        "/console/users/alice/sessions/revoke-all",
        &form(&[("csrf", &csrf), ("confirmed", "1")]),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let page = browser.get(&server, "/console/users/alice").await.text().await.unwrap();
    assert!(page.contains("Every session of alice was revoked."));
    assert!(page.contains("No active sessions."));
    let refreshed = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(refreshed.status(), 400, "alice's refresh token fails at once");
}

/// The console's user page revokes only a session of the user it names,
/// and a helpdesk (`users:edit`) cannot sign out a user who holds
/// permissions there either.
#[tokio::test]
async fn a_helpdesk_user_cannot_revoke_another_users_or_an_administrators_session() {
    let server = Server::start(&config(), &[]);
    let root = Browser::new();
    sign_in(&server, &root, "/console/account", "root", "root-password").await;
    let page = root.get(&server, "/console/account").await.text().await.unwrap();
    let root_sid =
        page.split("<tr class=\"current\" data-sid=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/users/alice", "carol", "carol-password").await;
    let token = csrf(&server, &browser, "/console/users/alice").await;
    let confirmed = form(&[("csrf", &token), ("confirmed", "1")]);

    // A sid of root under alice's page: not alice's session.
    let resp = post(&server, &browser, &format!("/console/users/alice/sessions/{root_sid}/revoke"), &confirmed).await;
    assert_eq!(resp.status(), 404);
    // Under root's own page: root holds permissions. The page offers no
    // Revoke button and says who can; a forged post is refused.
    let page = browser.get(&server, "/console/users/root").await.text().await.unwrap();
    assert!(page.contains(&format!("data-sid=\"{root_sid}\"")), "root's session is listed: {page}");
    assert!(!page.contains("/sessions/revoke-all") && !page.contains(">Revoke<"), "no Revoke buttons: {page}");
    assert!(page.contains("only an administrator (<code>system:administer</code>) can sign their sessions out"));
    let resp = post(&server, &browser, &format!("/console/users/root/sessions/{root_sid}/revoke"), &confirmed).await;
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(text.contains("revoking their sessions needs the system:administer permission"), "{text}");
    let resp = post(&server, &browser, "/console/users/root/sessions/revoke-all", &confirmed).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(root.get(&server, "/console/account").await.status(), 200, "root is still signed in");

    // An administrator revokes it from the right page.
    let admin = Browser::new();
    sign_in(&server, &admin, "/console/users/root", "root", "root-password").await;
    let token = csrf(&server, &admin, "/console/users/root").await;
    let confirmed = form(&[("csrf", &token), ("confirmed", "1")]);
    let resp = post(&server, &admin, &format!("/console/users/root/sessions/{root_sid}/revoke"), &confirmed).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(root.get(&server, "/console/account").await.status(), 303, "that session is signed out");
}

#[tokio::test]
async fn users_are_created_disabled_and_given_permissions_through_the_console() {
    let server = Server::start(&config(), &[]);
    let admin = Browser::new();
    sign_in(&server, &admin, "/console/users", "root", "root-password").await;
    let token = csrf(&server, &admin, "/console/users").await;
    // A refused creation shows the rule inline and keeps what was typed.
    let resp = post(
        &server,
        &admin,
        "/console/users",
        &form(&[("csrf", &token), ("username", "dave"), ("email", "dave@example.com"), ("password", "short")]),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("role=\"alert\"") && page.contains("password"), "{page}");
    assert_eq!(input_value(&page, "username").as_deref(), Some("dave"));
    let resp = post(
        &server,
        &admin,
        "/console/users",
        &form(&[
            ("csrf", &token),
            ("username", "dave"),
            ("email", "dave@example.com"),
            ("password", "dave-password"),
            ("permissions", "users:edit"),
        ]),
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some("/console/users/dave"));
    let page = admin.get(&server, "/console/users/dave").await.text().await.unwrap();
    assert!(page.contains("User dave created."));
    assert!(page.contains("<span class=\"badge\">users:edit</span>"), "{page}");

    // dave signs in to the console and sees Users.
    let dave = Browser::new();
    assert_eq!(sign_in(&server, &dave, "/console", "dave", "dave-password").await, "/console");
    assert_eq!(location(&dave.get(&server, "/console").await).as_deref(), Some("/console/users"));

    // Permissions are only for system:administer viewers.
    let helpdesk = Browser::new();
    sign_in(&server, &helpdesk, "/console/users/dave", "carol", "carol-password").await;
    let page = helpdesk.get(&server, "/console/users/dave").await.text().await.unwrap();
    assert!(!page.contains("Save permissions"), "no permission controls for helpdesk");
    let carol_token = input_value(&page, "csrf").unwrap();
    let resp = post(
        &server,
        &helpdesk,
        "/console/users/dave/permissions",
        &form(&[("csrf", &carol_token), ("permissions", "system:administer")]),
    )
    .await;
    assert_eq!(resp.status(), 403, "the use case refuses it");

    // A password reset: the new password signs in, the old one no longer.
    let resp = post(
        &server,
        &admin,
        "/console/users/dave/password",
        &form(&[("csrf", &token), ("password", "dave-new-password")]),
    )
    .await;
    assert_eq!(resp.status(), 303);
    let later = Browser::new();
    sign_in(&server, &later, "/console", "dave", "dave-new-password").await;

    // Disabling asks first, then signs dave out everywhere.
    let resp = post(&server, &admin, "/console/users/dave/disable", &form(&[("csrf", &token)])).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Disable this user?"));
    let resp =
        post(&server, &admin, "/console/users/dave/disable", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(dave.get(&server, "/console/users").await.status(), 303, "dave's console session ended");
    let page = admin.get(&server, "/console/users/dave").await.text().await.unwrap();
    assert!(page.contains("Disabled") && page.contains("Enable user"), "{page}");
    let audit = admin.get(&server, "/console/audit?user=dave").await.text().await.unwrap();
    assert!(audit.contains("<td>user_disabled</td><td>root</td>"), "{audit}");
    assert!(audit.contains("<td>user_created</td><td>root</td>"), "{audit}");
    assert!(!audit.contains("<td>sign_in</td><td>root</td>"), "filtered by user: {audit}");
}

#[tokio::test]
async fn a_client_is_created_with_a_session_limit_its_secret_shown_once_rotated_and_deleted() {
    let server = Server::start(&config(), &[]);
    let admin = Browser::new();
    sign_in(&server, &admin, "/console/clients", "root", "root-password").await;
    let token = csrf(&server, &admin, "/console/clients/new").await;
    let kubectl = |max: &'static str| {
        form(&[
            ("csrf", &token),
            ("id", "kubectl"),
            ("name", "kubectl"),
            ("redirect_uris", "http://127.0.0.1:8000/\r\n"),
            ("grant_types", "authorization_code"),
            ("grant_types", "refresh_token"),
            ("scopes", "openid"),
            ("session_max_lifetime", max),
        ])
    };
    let resp = post(&server, &admin, "/console/clients", &kubectl("13h")).await;
    assert_eq!(resp.status(), 400, "a loosening override is refused");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Nothing was saved") && page.contains("max_lifetime"), "{page}");
    let resp = post(&server, &admin, "/console/clients", &kubectl("1h")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(page.contains("shown only once"));
    let secret = page.split("id=\"client_secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(secret.len() >= 40, "{secret}");
    let ok = server
        .post_form("/revoke", Some(("kubectl", &secret)), &[("token", "x"), ("token_type_hint", "refresh_token")])
        .await;
    assert_eq!(ok.status(), 200, "the secret works");
    let list = admin.get(&server, "/console/clients").await.text().await.unwrap();
    assert!(list.contains("<td>max 1 h</td>"), "{list}");
    assert!(!admin.get(&server, "/console/clients/kubectl").await.text().await.unwrap().contains(&secret));

    // Edit: a 30-minute maximum instead.
    let mut edited = kubectl("30m");
    edited.retain(|(k, _)| k != "id");
    let resp = post(&server, &admin, "/console/clients/kubectl", &edited).await;
    assert_eq!(resp.status(), 303);
    let list = admin.get(&server, "/console/clients").await.text().await.unwrap();
    assert!(list.contains("Client kubectl saved.") && list.contains("<td>max 30 min</td>"), "{list}");

    let resp =
        post(&server, &admin, "/console/clients/kubectl/secret", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let fresh = page.split("id=\"client_secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_ne!(fresh, secret);
    let old = server
        .post_form("/revoke", Some(("kubectl", &secret)), &[("token", "x"), ("token_type_hint", "refresh_token")])
        .await;
    assert_eq!(old.status(), 401, "the old secret stopped working");

    let resp = post(&server, &admin, "/console/clients/kubectl/delete", &form(&[("csrf", &token)])).await;
    assert!(resp.text().await.unwrap().contains("Delete this client?"));
    let resp =
        post(&server, &admin, "/console/clients/kubectl/delete", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 303);
    let list = admin.get(&server, "/console/clients").await.text().await.unwrap();
    assert!(list.contains("Client kubectl deleted; 0 of its sessions were revoked."), "{list}");
    assert!(!list.contains("href=\"/console/clients/kubectl\""), "{list}");
    // Config and built-in clients are not editable here.
    let resp =
        post(&server, &admin, "/console/clients/console/delete", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 409);
}

#[tokio::test]
async fn keys_are_listed_and_rotated_after_confirming() {
    let server = Server::start(&config(), &[]);
    let admin = Browser::new();
    sign_in(&server, &admin, "/console/keys", "root", "root-password").await;
    let page = admin.get(&server, "/console/keys").await.text().await.unwrap();
    assert_eq!(page.matches("<span class=\"badge on\">active</span>").count(), 2, "{page}");
    let token = input_value(&page, "csrf").unwrap();
    let resp = post(&server, &admin, "/console/keys/rotate", &form(&[("csrf", &token)])).await;
    assert!(resp.text().await.unwrap().contains("Rotate the signing keys?"));
    let resp = post(&server, &admin, "/console/keys/rotate", &form(&[("csrf", &token), ("confirmed", "1")])).await;
    assert_eq!(resp.status(), 303);
    let page = admin.get(&server, "/console/keys").await.text().await.unwrap();
    assert!(page.contains("A new signing key was published."));
    assert!(page.contains(">retired<") || page.contains(">next<"), "{page}");
}

#[tokio::test]
async fn my_sessions_signs_out_one_other_session_and_then_this_one() {
    let server = Server::start(&config(), &[]);
    let other = Browser::new();
    sign_in(&server, &other, "/console/account", "alice", "alice-password").await;
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/account", "alice", "alice-password").await;
    let page = browser.get(&server, "/console/account").await.text().await.unwrap();
    assert_eq!(page.matches("<tr").count(), 3, "a header and two sessions: {page}");
    assert_eq!(page.matches(">Sign out this session<").count(), 1, "the current one is marked");
    let token = input_value(&page, "csrf").unwrap();
    let other_sid = page.split("<tr data-sid=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let resp =
        post(&server, &browser, &format!("/console/account/sessions/{other_sid}/revoke"), &form(&[("csrf", &token)]))
            .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some("/console/account"));
    assert_eq!(other.get(&server, "/console/account").await.status(), 303, "the other browser is signed out");
    let page = browser.get(&server, "/console/account").await.text().await.unwrap();
    assert!(page.contains("That session was signed out."));
    // SPEC 14: it is listed below the live ones as ended, with why.
    assert!(page.contains(&format!("<tr data-sid=\"{other_sid}\" data-end-reason=\"signed_out\">")), "{page}");
    assert!(page.contains("Ended: signed out"), "{page}");
    let current = page.split("<tr class=\"current\" data-sid=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let resp =
        post(&server, &browser, &format!("/console/account/sessions/{current}/revoke"), &form(&[("csrf", &token)]))
            .await;
    assert_eq!(location(&resp).as_deref(), Some("/console/signed-out"));
    assert_eq!(browser.get(&server, "/console/account").await.status(), 303);
    // Someone else's session answers like an unknown one.
    let bob = Browser::new();
    sign_in(&server, &bob, "/console/account", "carol", "carol-password").await;
    let carol_token = csrf(&server, &bob, "/console/account").await;
    let resp =
        post(&server, &bob, &format!("/console/account/sessions/{current}/revoke"), &form(&[("csrf", &carol_token)]))
            .await;
    assert_eq!(resp.status(), 404);
}

/// The console keeps its session alive by refreshing while it is used, and
/// it ends with the idle timeout like any other session. In process on a
/// manual clock.
#[tokio::test]
async fn the_console_refreshes_while_used_and_ends_at_the_idle_timeout() {
    let env = [("TENURE_SESSION_IDLE_TIMEOUT", "4s"), ("TENURE_SESSION_ACCESS_TOKEN_TTL", "4s")];
    let server = ManualServer::start(&config(), &env).await;
    let browser = Browser::new();
    sign_in(&server, &browser, "/console/account", "alice", "alice-password").await;
    server.advance(3);
    assert_eq!(browser.get(&server, "/console/account").await.status(), 200, "past half the token's life: refreshed");
    server.advance(2);
    assert_eq!(
        browser.get(&server, "/console/account").await.status(),
        200,
        "5 s after sign-in, alive only because the console refreshed at 3 s"
    );
    server.advance(5);
    let idle = browser.get(&server, "/console/account").await;
    assert_eq!(idle.status(), 303, "idle longer than the idle timeout: signed out");
    assert!(location(&idle).unwrap().starts_with("/authorize?"));
}

/// Resident memory of the server process, in KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_visits_with_huge_urls_keep_a_bounded_return_path() {
    let server = Server::start(&config(), &[]);
    let huge = format!("/console/users?query={}", "q".repeat(60_000));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Warm up (the first requests size the server's buffers and pools).
    for _ in 0..20 {
        assert_eq!(http.get(server.url(&huge)).send().await.unwrap().status(), 303);
    }
    let before = rss_kib(&server);
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (http, url) = (http.clone(), server.url(&huge));
        set.spawn(async move {
            for _ in (worker..2_000).step_by(8) {
                let resp = http.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), 303, "each visit is sent to sign in");
            }
        });
    }
    set.join_all().await;
    let grown_mib = rss_kib(&server).saturating_sub(before) / 1024;
    // 2,000 pending sign-ins that each kept the 60 KB URL held 120 MB.
    assert!(grown_mib < 30, "2,000 anonymous visits grew the server by {grown_mib} MiB");

    // A visit with a huge query comes back to its page without the query;
    // a normal one to the page asked for, query included.
    let browser = Browser::new();
    let landed = sign_in(&server, &browser, &huge, "carol", "carol-password").await;
    assert_eq!(landed, "/console/users");
    let landed = sign_in(&server, &Browser::new(), "/console/users?query=car", "carol", "carol-password").await;
    assert_eq!(landed, "/console/users?query=car");
}
