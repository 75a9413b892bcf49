//! The session limit end to end (SPEC 14, "Session limit"), against the
//! real binary: `session.max_sessions` with `end_oldest` (the least
//! recently active session ends: its refresh refused, its back-channel
//! logout delivered) and `ask` (the sign-in page lists the live sessions;
//! the user ends one or cancels; driven in Chromium too); bad values
//! refused at start and through the admin API. The race at the limit is
//! the store contract's (`store_contract::*::of_32_concurrent_sign_ins_*`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::Chromium;
use crate::support::flow::{Browser, code_from, input_value, location, pkce_pair};
use crate::support::kit::{
    LogoutReceiver, ROOT_AUTOMATION, WEB, WEB_REDIRECT, call, introspect_active, redeem, refresh, root_token, sign_in,
    user,
};
use crate::support::{Server, config_with, eventually, tenure};

/// `web` (named "Web Shop", with a back-channel logout endpoint when
/// given), alice, the root service account, and `session` settings.
fn config(backchannel: Option<&str>, session: &str) -> String {
    let backchannel = backchannel.map(|u| format!("backchannel_logout_uri = \"{u}\"\n")).unwrap_or_default();
    config_with(&format!(
        r#"
[[clients]]
id = "web"
name = "Web Shop"
secret = "web-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]
{backchannel}{}{ROOT_AUTOMATION}
[session]
{session}
"#,
        user("alice", &[])
    ))
}

fn authorize_query(challenge: &str) -> Vec<(&'static str, String)> {
    authorize_query_to(WEB_REDIRECT, challenge)
}

fn authorize_query_to(redirect_uri: &str, challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "web".into()),
        ("redirect_uri", redirect_uri.into()),
        ("scope", "openid".into()),
        ("code_challenge", challenge.to_owned()),
        ("code_challenge_method", "S256".into()),
    ]
}

#[tokio::test]
async fn end_oldest_ends_the_least_recently_active_session_with_its_logout() {
    end_oldest_on(&[]).await;
}

/// The same against a PostgreSQL store (the step is `start_session` there).
#[tokio::test]
async fn end_oldest_ends_the_least_recently_active_session_on_postgres() {
    let Some(db) = crate::support::postgres::database().await else { return };
    crate::support::postgres::migrate(&db.url);
    end_oldest_on(&[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())]).await;
}

async fn end_oldest_on(env: &[(&str, &str)]) {
    let rp = LogoutReceiver::start().await;
    let server = Server::start(&config(Some(&rp.uri), "max_sessions = 2"), env);
    let first = sign_in(&server, "alice", "alice-password", "openid").await;
    let second = sign_in(&server, "alice", "alice-password", "openid").await;
    // The first is the least recently active: the third sign-in ends it.
    let third = sign_in(&server, "alice", "alice-password", "openid").await;

    let refused = refresh(&server, WEB, &first.refresh()).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    for live in [&second, &third] {
        assert_eq!(refresh(&server, WEB, &live.refresh()).await.status(), 200, "the other two live on");
    }
    let first_sid = first.sid();
    assert!(
        eventually(Duration::from_secs(20), || async { rp.received().contains(&first_sid) }).await,
        "the ended session's back-channel logout is delivered: {:?}",
        rp.received()
    );
    assert_eq!(rp.received(), std::slice::from_ref(&first_sid), "only the ended session is logged out");

    // The audit log says why.
    let token = root_token(&server).await;
    let (status, audit) = call(&server, "GET", "/admin/audit", Some(&token), None).await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("session_limit") && text.contains(&first_sid), "{audit}");
    // The settings say where the limit came from.
    let (_, settings) = call(&server, "GET", "/admin/settings/session", Some(&token), None).await;
    assert_eq!(settings["max_sessions"], 2, "{settings}");
    assert_eq!(settings["on_session_limit"], "end_oldest", "{settings}");
    assert_eq!(settings["sources"]["max_sessions"], "file", "{settings}");
    let (_, explained) =
        call(&server, "GET", "/admin/settings/session/explain?username=alice", Some(&token), None).await;
    assert_eq!(explained["max_sessions"]["value"], 2, "{explained}");
    assert_eq!(explained["on_session_limit"]["rule"], "default", "{explained}");
}

/// The "too many sessions" page, driven with a plain HTTP browser: cancel
/// goes back to the sign-in page; a bad choice shows the page again; ending
/// one session signs in and kills it.
#[tokio::test]
async fn ask_lists_the_sessions_and_ends_the_one_chosen() {
    let server = Server::start(&config(None, "max_sessions = 1\non_session_limit = \"ask\""), &[]);
    let first = sign_in(&server, "alice", "alice-password", "openid").await;
    let browser = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let query = authorize_query(&challenge);
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = browser.authorize(&server, &query).await.text().await.unwrap();
    let at_limit = browser.submit_sign_in(&server, &page, "alice", "alice-password", false).await;
    assert_eq!(at_limit.status(), 200);
    let html = at_limit.text().await.unwrap();
    assert!(html.contains("Too many sessions"), "{html}");
    assert!(html.contains("Web Shop"), "the session's application by name: {html}");
    assert!(html.contains(&format!(r#"value="{}" checked"#, first.sid())), "the live session is listed: {html}");
    let csrf = input_value(&html, "csrf_token").unwrap();
    let pending = input_value(&html, "pending").unwrap();

    // Cancel: back to the sign-in page; the pending sign-in is gone.
    let cancelled = browser
        .post_form(
            &server,
            "/login/session-limit",
            &[("csrf_token", &csrf), ("pending", &pending), ("action", "cancel")],
        )
        .await;
    assert_eq!(cancelled.status(), 303);
    let back = location(&cancelled).unwrap();
    assert!(back.starts_with("/authorize?"), "{back}");
    let again = browser
        .post_form(
            &server,
            "/login/session-limit",
            &[("csrf_token", &csrf), ("pending", &pending), ("action", "end"), ("end", &first.sid())],
        )
        .await;
    assert_ne!(again.status(), 303, "a used pending sign-in is spent");
    assert!(introspect_active(&server, &first.access()).await, "nothing ended");

    // Sign in again; a choice that is not one of the user's sessions ends nothing.
    let page = browser.get(&server, &back).await.text().await.unwrap();
    let html = browser.submit_sign_in(&server, &page, "alice", "alice-password", false).await.text().await.unwrap();
    let pending = input_value(&html, "pending").unwrap();
    let wrong = browser
        .post_form(
            &server,
            "/login/session-limit",
            &[
                ("csrf_token", &csrf),
                ("pending", &pending),
                ("action", "end"),
                ("end", "0123456789abcdef0123456789abcdef"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 409);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("Choose again"), "{html}");
    let pending = input_value(&html, "pending").unwrap();
    // Without the browser's CSRF token: refused.
    let forged = Browser::new()
        .post_form(
            &server,
            "/login/session-limit",
            &[("csrf_token", &csrf), ("pending", &pending), ("action", "end"), ("end", &first.sid())],
        )
        .await;
    assert_ne!(forged.status(), 303);
    assert!(introspect_active(&server, &first.access()).await, "still nothing ended");

    // End the first session: signed in, the first is dead.
    let chosen = browser
        .post_form(
            &server,
            "/login/session-limit",
            &[("csrf_token", &csrf), ("pending", &pending), ("action", "end"), ("end", &first.sid())],
        )
        .await;
    assert_eq!(chosen.status(), 303, "{}", chosen.text().await.unwrap_or_default());
    let next = location(&chosen).unwrap();
    assert!(next.starts_with("/authorize?"), "{next}");
    let code = code_from(browser.get(&server, &next).await).await;
    let tokens = redeem(&server, WEB, &code, WEB_REDIRECT, Some(&verifier)).await;
    assert!(!introspect_active(&server, &first.access()).await, "the chosen session ended");
    assert_eq!(refresh(&server, WEB, &first.refresh()).await.status(), 400, "its refresh is refused");
    assert_eq!(refresh(&server, WEB, &tokens.refresh()).await.status(), 200);
}

/// The same in Chromium: the page renders, the least recently active
/// session is preselected, and its button signs in.
#[tokio::test]
async fn ask_works_in_chromium() {
    let Some(chromium) = Chromium::start().await else { return };
    // The application's callback, so the browser lands on a page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/callback", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/callback", axum::routing::get(|| async { "signed in" }));
    let app_task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = config(None, "max_sessions = 1\non_session_limit = \"ask\"").replace(
        &format!("redirect_uris = [\"{WEB_REDIRECT}\"]"),
        &format!("redirect_uris = [\"{WEB_REDIRECT}\", \"{callback}\"]"),
    );
    let server = Server::start(&config, &[]);
    let first = sign_in(&server, "alice", "alice-password", "openid").await;
    let (_, challenge) = pkce_pair();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(authorize_query_to(&callback, &challenge))
        .finish();
    chromium.goto(&server.url(&format!("/authorize?{query}"))).await;
    chromium.fill("#username", "alice").await;
    chromium.fill("#password", "alice-password").await;
    chromium.click("button[type=submit]").await;
    chromium.wait_for_text("h1", "Too many sessions").await;
    if let Ok(dir) = std::env::var("TENURE_SCREENSHOT_DIR") {
        let png = chromium.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("session-limit-ask.png"), png).unwrap();
    }
    let checked = chromium.execute("return document.querySelector('input[name=end]:checked').value", vec![]).await;
    assert_eq!(checked, json!(first.sid()), "the least recently active session is preselected");
    chromium.click("button[value=end]").await;
    assert!(
        eventually(Duration::from_secs(20), || async { chromium.url().await.as_str().starts_with(&callback) }).await,
        "signed in and sent back to the application: {}",
        chromium.url().await
    );
    assert!(chromium.url().await.query_pairs().any(|(k, _)| k == "code"));
    assert_eq!(refresh(&server, WEB, &first.refresh()).await.status(), 400, "the chosen session ended");
    let errors: Vec<_> =
        chromium.console_errors().await.into_iter().filter(|e| !e.message.contains("favicon.ico")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    chromium.close().await;
    app_task.abort();
}

#[tokio::test]
async fn bad_values_are_refused_at_start_and_through_the_admin_api() {
    for (setting, words) in [
        ("max_sessions = -1", "session.max_sessions must be 0 (no limit) or more, not -1"),
        ("max_sessions = 1.5", "max_sessions"),
        ("on_session_limit = \"newest\"", "on_session_limit"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tenure.toml"), config(None, setting)).unwrap();
        let out = tenure().arg("check-config").current_dir(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting} is refused");
        assert!(stderr.contains(words), "{setting}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenure.toml"), config(None, "")).unwrap();
    let out = tenure()
        .arg("check-config")
        .current_dir(dir.path())
        .env("TENURE_SESSION_ON_SESSION_LIMIT", "oldest")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("TENURE_SESSION_ON_SESSION_LIMIT"), "{stderr}");

    let server = Server::start(&config(None, ""), &[("TENURE_SESSION_MAX_SESSIONS", "3")]);
    let token = root_token(&server).await;
    let (_, settings) = call(&server, "GET", "/admin/settings/session", Some(&token), None).await;
    assert_eq!(
        (settings["max_sessions"].clone(), settings["sources"]["max_sessions"].clone()),
        (json!(3), json!("env"))
    );
    for (body, key) in [
        (json!({"max_sessions": -2}), "max_sessions"),
        (json!({"max_sessions": "three"}), "max_sessions"),
        (json!({"on_session_limit": "newest"}), "on_session_limit"),
    ] {
        let (status, answer) = call(&server, "PUT", "/admin/settings/session", Some(&token), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["message"].as_str().unwrap_or_default().contains(key), "{body}: {answer}");
    }
    let (status, answer) = call(
        &server,
        "PUT",
        "/admin/settings/session",
        Some(&token),
        Some(json!({"max_sessions": 1, "on_session_limit": "ask"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, settings) = call(&server, "GET", "/admin/settings/session", Some(&token), None).await;
    assert_eq!(settings["max_sessions"], 1);
    assert_eq!(settings["on_session_limit"], "ask");
    assert_eq!(settings["sources"]["on_session_limit"], "admin");
}
