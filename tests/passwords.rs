//! A new password ends the old sessions (SPEC 14, second bullet), end to
//! end against the real binary: an administrator's reset through the admin
//! API, the console and the CLI ends every session of the user in the same
//! step (refresh `invalid_grant`, access tokens inactive at introspection
//! and refused at userinfo, a back-channel logout delivered for each); a
//! user's own change (`POST /account/password`) ends the others and keeps
//! the current one; wrong current passwords count against the sign-in
//! throttle; a short new password is refused naming the rule. The same on
//! PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use serde_json::{Value, json};

use crate::support::browser::{Chromium, PATIENCE};
use crate::support::flow::{Browser, input_value, location};
use crate::support::kit::{
    self, ROOT_AUTOMATION, Tokens, WEB, call, claims, introspect_active, root_token, user, web_client,
};
use crate::support::{BIN, Server, config_with, eventually, postgres};

/// A relying party's back-channel logout endpoint on 127.0.0.1: it keeps
/// the `sid` of every logout token posted to it.
struct Receiver {
    port: u16,
    sids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(State(sids): State<Arc<Mutex<Vec<String>>>>, body: String) -> axum::http::StatusCode {
    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("a logout_token");
    let sid = claims(&token)["sid"].as_str().expect("a logout token names the session").to_owned();
    sids.lock().unwrap().push(sid);
    axum::http::StatusCode::OK
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sids: Arc<Mutex<Vec<String>>> = Arc::default();
        let app = axum::Router::new().route("/bc", axum::routing::post(receive)).with_state(sids.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { port, sids, task }
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/bc", self.port)
    }

    /// Wait until a logout for each of `sids` arrived; the sids received.
    async fn wait_for(&self, sids: &[&str]) -> Vec<String> {
        let arrived = eventually(Duration::from_secs(20), || async {
            let got = self.sids.lock().unwrap();
            sids.iter().all(|s| got.iter().any(|g| g == s))
        })
        .await;
        let got = self.sids.lock().unwrap().clone();
        assert!(arrived, "a back-channel logout for each of {sids:?}, got {got:?}");
        got
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `web` with a back-channel logout URI, an administrator `root` of the
/// config file, and the `root-automation` service account.
fn config(backchannel_uri: &str) -> String {
    config_with(&format!(
        "{ROOT_AUTOMATION}{}backchannel_logout_uri = \"{backchannel_uri}\"\n{}",
        web_client(&["openid", "profile"]),
        user("root", &["system:administer"]),
    ))
}

/// Create the stored user `name` (password `{name}-password`).
async fn create_user(server: &Server, name: &str) {
    let root = root_token(server).await;
    let body = json!({ "username": name, "password": format!("{name}-password") });
    let (status, answer) = call(server, "POST", "/admin/users", Some(&root), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
}

async fn sign_in(server: &Server, name: &str, password: &str) -> Tokens {
    kit::sign_in(server, name, password, "openid").await
}

/// `GET /userinfo` with `access`: the status.
async fn userinfo(server: &Server, access: &str) -> u16 {
    server.http.get(server.url("/userinfo")).bearer_auth(access).send().await.unwrap().status().as_u16()
}

/// The session of `tokens` has ended: its refresh token is refused, its
/// access token inactive at introspection and refused at userinfo.
async fn assert_ended(server: &Server, tokens: &Tokens) {
    let resp = kit::refresh(server, WEB, &tokens.refresh()).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "refresh after the change: {body}");
    assert!(!introspect_active(server, &tokens.access()).await, "inactive at introspection");
    assert_eq!(userinfo(server, &tokens.access()).await, 401, "refused at userinfo");
}

/// The session of `tokens` lives: its access token works and its refresh
/// token rotates. The new tokens.
async fn assert_alive(server: &Server, tokens: &Tokens) -> Tokens {
    assert!(introspect_active(server, &tokens.access()).await, "active at introspection");
    assert_eq!(userinfo(server, &tokens.access()).await, 200);
    let resp = kit::refresh(server, WEB, &tokens.refresh()).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "the refresh still works: {body}");
    Tokens { body }
}

/// Every audit event, newest first.
async fn audit(server: &Server) -> Vec<Value> {
    let root = root_token(server).await;
    let (status, body) = call(server, "GET", "/admin/audit?limit=100", Some(&root), None).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// `POST /account/password` with `token` and a JSON body.
async fn change_own(server: &Server, token: &str, current: &str, new: &str) -> (u16, Value) {
    let body = json!({ "current_password": current, "new_password": new });
    call(server, "POST", "/account/password", Some(token), Some(body)).await
}

/// An administrator's reset through the admin API ends both sessions of
/// the user in the same step, each with its back-channel logout.
async fn an_admin_reset_ends_every_session(server: &Server, receiver: &Receiver) {
    create_user(server, "dave").await;
    let first = sign_in(server, "dave", "dave-password").await;
    let second = sign_in(server, "dave", "dave-password").await;
    assert!(introspect_active(server, &first.access()).await);

    let root = root_token(server).await;
    let body = json!({ "password": "dave-new-password" });
    let (status, answer) = call(server, "PATCH", "/admin/users/dave", Some(&root), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    // Ended by the time the answer arrived.
    assert_ended(server, &first).await;
    assert_ended(server, &second).await;
    receiver.wait_for(&[&first.sid(), &second.sid()]).await;

    let events = audit(server).await;
    let revoked = events
        .iter()
        .find(|e| e["kind"] == "user_sessions_revoked" && e["target"] == "user:dave")
        .unwrap_or_else(|| panic!("user_sessions_revoked in {events:?}"));
    assert_eq!(
        (revoked["reason"].as_str(), revoked["actor"].as_str()),
        (Some("credentials_changed"), Some("client:root-automation"))
    );
    let updated =
        events.iter().find(|e| e["kind"] == "user_updated" && e["target"] == "user:dave").expect("user_updated");
    assert_eq!(updated["reason"], "credentials_changed");
    assert_eq!(updated["details"]["changed"], json!(["password"]));
    // The new password signs in; the session it starts lives.
    let again = sign_in(server, "dave", "dave-new-password").await;
    assert_alive(server, &again).await;
}

/// A user's own change ends their other sessions and keeps the current one.
async fn a_self_change_keeps_the_current_session(server: &Server, receiver: &Receiver) {
    create_user(server, "erin").await;
    let current = sign_in(server, "erin", "erin-password").await;
    let other = sign_in(server, "erin", "erin-password").await;

    let (status, body) = change_own(server, &current.access(), "erin-password", "erin-new-password").await;
    assert_eq!(status, 204, "{body}");
    assert_ended(server, &other).await;
    receiver.wait_for(&[&other.sid()]).await;
    let refreshed = assert_alive(server, &current).await;
    assert_eq!(refreshed.sid(), current.sid(), "the same session");
    assert!(!receiver.sids.lock().unwrap().contains(&current.sid()), "no logout for the session kept");
    let (status, listed) = call(server, "GET", "/account/sessions", Some(&refreshed.access()), None).await;
    assert_eq!(status, 200, "{listed}");
    let live: Vec<&Value> =
        listed["sessions"].as_array().unwrap().iter().filter(|s| s["ended"] != json!(true)).collect();
    assert_eq!(live.len(), 1, "only the current session is live: {listed}");
    assert_eq!(live[0]["sid"], current.sid().as_str());
    // The new password signs in, the old one no longer.
    sign_in(server, "erin", "erin-new-password").await;
    let browser = Browser::new();
    let page = browser.authorize(server, &sign_in_query()).await.text().await.unwrap();
    let refused = browser.submit_sign_in(server, &page, "erin", "erin-password", false).await;
    assert_eq!(refused.status(), 401, "the old password is refused");
}

fn sign_in_query() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", kit::WEB_REDIRECT),
        ("scope", "openid"),
        ("state", "s"),
    ]
}

#[tokio::test]
async fn an_admin_reset_through_the_api_ends_every_session_with_back_channel_logouts() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    an_admin_reset_ends_every_session(&server, &receiver).await;
}

#[tokio::test]
async fn a_users_own_change_ends_the_other_sessions_and_keeps_the_current_one() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    a_self_change_keeps_the_current_session(&server, &receiver).await;
}

#[tokio::test]
async fn a_reset_in_the_console_ends_every_session_of_the_user() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "dave").await;
    let dave = sign_in(&server, "dave", "dave-password").await;
    let admin = Browser::new();
    crate::console::sign_in(&server, &admin, "/console/users/dave", "root", "root-password").await;
    let csrf = crate::console::csrf(&server, &admin, "/console/users/dave").await;
    let resp = admin
        .post_form(
            &server,
            "/console/users/dave/password",
            &[("csrf", csrf.as_str()), ("password", "dave-new-password")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let page = admin.get(&server, "/console/users/dave").await.text().await.unwrap();
    assert!(page.contains("The password of dave was reset, and every session of theirs was signed out."), "{page}");
    assert_ended(&server, &dave).await;
    receiver.wait_for(&[&dave.sid()]).await;
    // A password_hash through the API ends the sessions too.
    let again = sign_in(&server, "dave", "dave-new-password").await;
    let root = root_token(&server).await;
    let body = json!({ "password_hash": hash_of("dave-third-password") });
    let (status, answer) = call(&server, "PATCH", "/admin/users/dave", Some(&root), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_ended(&server, &again).await;
    sign_in(&server, "dave", "dave-third-password").await;

    // An administrator resetting their own password in the console ends
    // their console session too.
    let body = json!({ "username": "rita", "password": "rita-password", "permissions": ["system:administer"] });
    let (status, answer) = call(&server, "POST", "/admin/users", Some(&root), Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    let rita = Browser::new();
    crate::console::sign_in(&server, &rita, "/console/users/rita", "rita", "rita-password").await;
    let csrf = crate::console::csrf(&server, &rita, "/console/users/rita").await;
    let resp = rita
        .post_form(
            &server,
            "/console/users/rita/password",
            &[("csrf", csrf.as_str()), ("password", "rita-new-password")],
        )
        .await;
    assert_eq!(location(&resp).as_deref(), Some("/console/signed-out"));
    assert_eq!(rita.get(&server, "/console/account").await.status(), 303, "rita signs in again");
}

/// The PHC string of `password` (`tenure hash-secret`).
fn hash_of(password: &str) -> String {
    let mut child = std::process::Command::new(BIN)
        .arg("hash-secret")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tenure hash-secret");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_reset_through_the_cli_ends_every_session_of_the_user() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "dave").await;
    let dave = sign_in(&server, "dave", "dave-password").await;
    let file = server.path().join("dave.pw");
    std::fs::write(&file, "dave-new-password\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["admin", "users", "set-password", "dave", "--password-file"])
        .arg(&file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_URL", &server.base)
        .env("TENURE_CLIENT_ID", "root-automation")
        .env("TENURE_CLIENT_SECRET", "root-automation-secret")
        .output()
        .expect("tenure admin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "user dave has a new password; their sessions are revoked\n");
    assert_ended(&server, &dave).await;
    receiver.wait_for(&[&dave.sid()]).await;
    sign_in(&server, "dave", "dave-new-password").await;
}

#[tokio::test]
async fn wrong_current_passwords_count_against_the_sign_in_throttle() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "erin").await;
    let erin = sign_in(&server, "erin", "erin-password").await;
    let other = sign_in(&server, "erin", "erin-password").await;
    for attempt in 0..5 {
        let (status, body) =
            change_own(&server, &erin.access(), &format!("wrong-{attempt}"), "erin-new-password").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        assert!(body["message"].as_str().unwrap().starts_with("current_password:"), "{body}");
    }
    // The sixth is throttled, the right password too: nothing is checked.
    let resp = server
        .http
        .post(server.url("/account/password"))
        .bearer_auth(erin.access())
        .form(&[("current_password", "erin-password"), ("new_password", "erin-new-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some(), "names the wait");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    // The same count as the sign-in page's: erin's sign-in from this address waits too.
    let browser = Browser::new();
    let page = browser.authorize(&server, &sign_in_query()).await.text().await.unwrap();
    let refused = browser.submit_sign_in(&server, &page, "erin", "erin-password", false).await;
    assert_eq!(refused.status(), 429, "the sign-in page shares the count");
    // Audited as failed sign-ins; nothing changed, no session ended.
    let events = audit(&server).await;
    let failed =
        events.iter().find(|e| e["kind"] == "sign_in_failed" && e["target"] == "user:erin").expect("sign_in_failed");
    assert_eq!(failed["details"]["wrong_password"], 5, "{failed}");
    assert!(introspect_active(&server, &other.access()).await, "a refused change ends nothing");
    assert!(!events.iter().any(|e| e["kind"] == "user_sessions_revoked"), "{events:?}");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_the_rule() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "erin").await;
    let erin = sign_in(&server, "erin", "erin-password").await;
    let (status, body) = change_own(&server, &erin.access(), "erin-password", "short").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert_eq!(body["message"], "new_password: must be at least 8 characters");
    let (status, body) = call(
        &server,
        "POST",
        "/account/password",
        Some(&erin.access()),
        Some(json!({ "new_password": "long-enough" })),
    )
    .await;
    assert_eq!((status, body["message"].as_str()), (400, Some("current_password: is required")), "{body}");
    let (status, body) = call(
        &server,
        "POST",
        "/account/password",
        Some(&erin.access()),
        Some(json!({ "current_password": "erin-password", "new_password": "long-enough", "confirm": "x" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("confirm"), "names the unknown field: {body}");
    // A client-credentials token has no account; no token is 401.
    let cc = root_token(&server).await;
    assert_eq!(change_own(&server, &cc, "x", "long-enough").await.0, 403);
    let resp = server.http.post(server.url("/account/password")).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // A user of the config file changes their password there.
    let root = sign_in(&server, "root", "root-password").await;
    let (status, body) = change_own(&server, &root.access(), "root-password", "root-new-password").await;
    assert_eq!(status, 409, "{body}");
    // Nothing of this changed erin's password or ended a session.
    assert_alive(&server, &erin).await;
}

#[tokio::test]
async fn the_console_changes_the_viewers_password_and_keeps_them_signed_in() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "erin").await;
    let elsewhere = sign_in(&server, "erin", "erin-password").await;
    let browser = Browser::new();
    crate::console::sign_in(&server, &browser, "/console/account", "erin", "erin-password").await;
    let page = browser.get(&server, "/console/account").await.text().await.unwrap();
    assert!(page.contains("Change password") && page.contains("name=\"current_password\""), "{page}");
    let csrf = input_value(&page, "csrf").unwrap();
    let post = |current: &'static str, new: &'static str, repeat: &'static str| {
        let (browser, server, csrf) = (&browser, &server, csrf.clone());
        async move {
            browser
                .post_form(
                    server,
                    "/console/account/password",
                    &[
                        ("csrf", csrf.as_str()),
                        ("current_password", current),
                        ("new_password", new),
                        ("repeat_password", repeat),
                    ],
                )
                .await
        }
    };
    // A wrong current password: the form again with a clear message.
    let resp = post("not-it", "erin-new-password", "erin-new-password").await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("Your current password was not right, so nothing was changed."), "{text}");
    assert!(text.contains("aria-invalid=\"true\""), "the field is marked: {text}");
    // A repetition that differs, a short new password.
    let text = post("erin-password", "erin-new-password", "erin-new-passwort").await.text().await.unwrap();
    assert!(text.contains("The new password and its repetition differ"), "{text}");
    let text = post("erin-password", "short", "short").await.text().await.unwrap();
    assert!(text.contains("The new password must be at least 8 characters"), "{text}");
    assert!(introspect_active(&server, &elsewhere.access()).await, "nothing changed yet");

    let resp = post("erin-password", "erin-new-password", "erin-new-password").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some("/console/account"));
    let page = browser.get(&server, "/console/account").await;
    assert_eq!(page.status(), 200, "this console session stays signed in");
    let page = page.text().await.unwrap();
    assert!(page.contains("Your password was changed. Every other session of yours was signed out"), "{page}");
    assert_ended(&server, &elsewhere).await;
    receiver.wait_for(&[&elsewhere.sid()]).await;
    sign_in(&server, "erin", "erin-new-password").await;
    // A config user is told where their password changes.
    let root = Browser::new();
    crate::console::sign_in(&server, &root, "/console/account", "root", "root-password").await;
    let page = root.get(&server, "/console/account").await.text().await.unwrap();
    assert!(page.contains("its password is changed there") && !page.contains("name=\"current_password\""), "{page}");
}

/// The same store steps on PostgreSQL: the admin reset and the self change
/// end what they should in one transaction.
#[tokio::test]
async fn on_postgres_a_new_password_ends_the_same_sessions() {
    let Some(db) = postgres::database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let migrated = std::process::Command::new(BIN)
        .arg("migrate")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", &db.url)
        .env("TENURE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let receiver = Receiver::start().await;
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let server = Server::start(&config(&receiver.uri()), &env);
    an_admin_reset_ends_every_session(&server, &receiver).await;
    a_self_change_keeps_the_current_session(&server, &receiver).await;
}

/// Sign `username` in to the console at `path` in Chromium, as a person
/// does on tenure's sign-in page.
async fn console_sign_in(browser: &Chromium, server: &Server, path: &str, username: &str, password: &str) {
    browser.goto(&server.url(path)).await;
    browser.wait_for("input[name=username]").await;
    browser.fill("input[name=username]", username).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("main#main").await;
}

/// Fill in My sessions' "Change password" and press it.
async fn change_in_browser(browser: &Chromium, current: &str, new: &str, repeat: &str) {
    browser.fill("#current_password", current).await;
    browser.fill("#new_password", new).await;
    browser.fill("#repeat_password", repeat).await;
    browser.click("#change-password button[type=submit]").await;
}

async fn wait_for_text(browser: &Chromium, text: &str) {
    let shown = eventually(PATIENCE, || async { browser.text("body").await.contains(text) }).await;
    assert!(shown, "the page never showed {text:?}: {}", browser.text("body").await);
}

#[tokio::test]
async fn a_user_changes_their_password_on_my_sessions_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "erin").await;
    let elsewhere = sign_in(&server, "erin", "erin-password").await;
    console_sign_in(&browser, &server, "/console/account", "erin", "erin-password").await;
    change_in_browser(&browser, "not-my-password", "erin-new-password", "erin-new-password").await;
    wait_for_text(&browser, "Your current password was not right").await;
    assert!(introspect_active(&server, &elsewhere.access()).await, "nothing changed");
    change_in_browser(&browser, "erin-password", "erin-new-password", "erin-new-password").await;
    wait_for_text(&browser, "Your password was changed.").await;
    assert_eq!(browser.url().await.path(), "/console/account", "still signed in to the console");
    assert_ended(&server, &elsewhere).await;
    // The refusal is a 400, which Chromium logs as a network entry for the
    // page itself; nothing else may appear (no CSP violation, no script error).
    let errors: Vec<_> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| {
            !(e.source == "network" && e.message.contains("/console/account/password - ") && e.message.contains("400"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors or CSP violations: {errors:#?}");
    browser.close().await;
}

/// The screenshots of "Change password" in docs/console/ (run on purpose:
/// `cargo test --test integration passwords::screenshots -- --ignored`).
#[tokio::test]
#[ignore = "writes docs/console/change-password*.png"]
async fn screenshots() {
    let Some(browser) = Chromium::start().await else { return };
    let receiver = Receiver::start().await;
    let server = Server::start(&config(&receiver.uri()), &[]);
    create_user(&server, "erin").await;
    let _app = sign_in(&server, "erin", "erin-password").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    browser.client.set_window_size(1280, 1150).await.unwrap();
    console_sign_in(&browser, &server, "/console/account", "erin", "erin-password").await;
    let shoot = |name: &'static str| {
        let (browser, dir) = (&browser, dir.clone());
        async move {
            // sleep: the window resize has no event to wait for before a screenshot
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(dir.join(format!("{name}.png")), browser.client.screenshot().await.unwrap()).unwrap();
        }
    };
    shoot("change-password").await;
    change_in_browser(&browser, "not-my-password", "erin-new-password", "erin-new-password").await;
    wait_for_text(&browser, "Your current password was not right").await;
    shoot("change-password-error").await;
    change_in_browser(&browser, "erin-password", "erin-new-password", "erin-new-password").await;
    wait_for_text(&browser, "Your password was changed.").await;
    shoot("change-password-done").await;
    browser.close().await;
}
