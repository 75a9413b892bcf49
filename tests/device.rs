//! The device authorization grant (RFC 8628, SPEC 15) against the real
//! HTTP stack: `POST /device_authorization`, the person at `/device` (over
//! HTTP as a browser does, and in Chromium), and the tool polling `/token`.
//! Expiry and the slow-down interval are tested on a manual clock.

use serde_json::Value;

use crate::support::browser::Chromium;
use crate::support::flow::{Browser, input_value, location};
use crate::support::kit::{self, claims};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with, postgres};

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A kubectl-style public client allowed the device grant (and refresh
/// tokens), its sessions capped at one hour; a confidential CLI; and the
/// `web` client, which may not use the grant.
pub fn config(extra: &str) -> String {
    config_with(&format!(
        r#"{web}{alice}{bob}
[[clients]]
id = "kubectl"
name = "kubectl"
public = true
grant_types = ["{GRANT}", "refresh_token"]
scopes = ["openid", "profile", "email", "groups"]
session = {{ max_lifetime = "1h" }}

[[clients]]
id = "deploy-cli"
name = "Deploy CLI"
secret = "deploy-secret"
grant_types = ["{GRANT}"]
scopes = ["openid", "deploy"]
{extra}"#,
        web = kit::web_client(&[]),
        alice = kit::user("alice", &[]),
        bob = kit::user("bob", &[]),
    ))
}

/// `POST /device_authorization` for the public client `client_id`.
pub async fn start(server: &Server, client_id: &str, scope: &str) -> Value {
    let resp = server.post_form("/device_authorization", None, &[("client_id", client_id), ("scope", scope)]).await;
    assert_eq!(resp.status(), 200, "device authorization");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.expect("json")
}

/// One poll of the public client `client_id`: the status and the body.
pub async fn poll(server: &Server, client_id: &str, device_code: &str) -> (u16, Value) {
    let resp = server
        .post_form("/token", None, &[("grant_type", GRANT), ("client_id", client_id), ("device_code", device_code)])
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("an error in {body}"))
}

/// The person, over HTTP as a browser: open `verification_uri_complete`,
/// sign in, confirm the code, press `action` (`approve` or `deny`).
/// Returns the final page.
pub async fn person(server: &Server, browser: &Browser, complete: &str, user: &str, action: &str) -> String {
    let path = complete.strip_prefix(&server.url("")).expect("on the issuer");
    let page = browser.get(server, path).await.text().await.expect("page");
    if page.contains("name=\"password\"") {
        let password = format!("{user}-password");
        let form = [
            ("username", user),
            ("password", password.as_str()),
            ("csrf_token", &input_value(&page, "csrf_token").expect("csrf")),
            ("return_to", &input_value(&page, "return_to").expect("return_to")),
        ];
        let signed_in = browser.post_form(server, "/device/login", &form).await;
        assert_eq!(signed_in.status(), 303, "{}", signed_in.text().await.unwrap_or_default());
        let next = location(&signed_in).expect("back to /device");
        assert!(next.starts_with("/device?user_code="), "{next}");
        let page = browser.get(server, &next).await.text().await.expect("page");
        return confirm(server, browser, &page, action).await;
    }
    confirm(server, browser, &page, action).await
}

/// From the code form (prefilled), through the confirmation page, to the answer.
async fn confirm(server: &Server, browser: &Browser, page: &str, action: &str) -> String {
    let code = input_value(page, "user_code").expect("the code form, prefilled");
    assert!(!page.contains("Device connected"), "a link alone approves nothing");
    let csrf = input_value(page, "csrf_token").expect("csrf");
    let shown = browser.post_form(server, "/device", &[("csrf_token", &csrf), ("user_code", &code)]).await;
    assert_eq!(shown.status(), 200);
    let shown = shown.text().await.expect("page");
    assert!(shown.contains("Allow access?"), "{shown}");
    let csrf = input_value(&shown, "csrf_token").expect("csrf");
    let form = [("csrf_token", csrf.as_str()), ("user_code", code.as_str()), ("action", action)];
    let answered = browser.post_form(server, "/device/decision", &form).await;
    assert_eq!(answered.status(), 200);
    answered.text().await.expect("page")
}

#[tokio::test]
async fn discovery_advertises_the_endpoint_and_the_grant() {
    let server = Server::start(&config(""), &[]);
    let meta = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["device_authorization_endpoint"], server.url("/device_authorization"));
    assert!(meta["grant_types_supported"].as_array().expect("list").iter().any(|g| g == GRANT));
    let meta = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["device_authorization_endpoint"], server.url("/device_authorization"));
}

#[tokio::test]
async fn device_authorization_checks_the_client_and_the_scope() {
    let server = Server::start(&config(""), &[]);
    let started = start(&server, "kubectl", "openid groups").await;
    let user_code = started["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code.bytes().filter(|b| *b != b'-').all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{user_code}");
    assert!(started["device_code"].as_str().expect("device_code").len() >= 43);
    assert_eq!(started["verification_uri"], server.url("/device"));
    assert_eq!(started["verification_uri_complete"], format!("{}?user_code={user_code}", server.url("/device")));
    assert_eq!((started["expires_in"].as_u64(), started["interval"].as_u64()), (Some(600), Some(5)));

    // A confidential client authenticates as at /token.
    let resp = server.post_form("/device_authorization", Some(("deploy-cli", "wrong")), &[]).await;
    assert_eq!(resp.status(), 401);
    let resp = server.post_form("/device_authorization", Some(("deploy-cli", "deploy-secret")), &[]).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert!(body["user_code"].is_string());
    // A client not allowed the grant.
    let resp = server.post_form("/device_authorization", Some(kit::WEB), &[]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error(&resp.json().await.expect("json")), "unauthorized_client");
    // A scope the client may not ask for.
    let resp = server.post_form("/device_authorization", None, &[("client_id", "kubectl"), ("scope", "admin")]).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(error(&body), "invalid_scope");
    assert!(body["error_description"].as_str().expect("text").contains("admin"), "{body}");
    // An unknown device code, or another client's.
    assert_eq!(error(&poll(&server, "kubectl", "nope").await.1), "invalid_grant");
    let theirs = server
        .post_form(
            "/token",
            Some(("deploy-cli", "deploy-secret")),
            &[("grant_type", GRANT), ("device_code", started["device_code"].as_str().expect("code"))],
        )
        .await;
    assert_eq!(error(&theirs.json().await.expect("json")), "invalid_grant");
    let resp = server.post_form("/token", None, &[("grant_type", GRANT), ("client_id", "kubectl")]).await;
    assert_eq!(error(&resp.json().await.expect("json")), "invalid_request", "device_code is required");
}

/// Every polling answer, on a manual clock: pending, slow_down (the interval
/// grows and is remembered), the tokens once, then invalid_grant; the family
/// is an ordinary one capped by the client's one-hour session override.
#[tokio::test]
async fn polling_answers_every_rfc_8628_error_and_the_tokens_once() {
    let server = ManualServer::start(&config(""), &[]).await;
    let started = start(&server, "kubectl", "openid profile groups").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let (status, body) = poll(&server, "kubectl", device_code).await;
    assert_eq!((status, error(&body)), (400, "authorization_pending"));
    let (_, body) = poll(&server, "kubectl", device_code).await;
    assert_eq!(error(&body), "slow_down", "polled again at once");
    assert!(body["error_description"].as_str().expect("text").contains("every 10 seconds"), "{body}");
    server.advance(9);
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "slow_down", "9 s < the 10 s interval now");
    server.advance(15);
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "authorization_pending", "15 s is enough");

    let browser = Browser::new();
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    let done = person(&server, &browser, complete, "alice", "approve").await;
    assert!(done.contains("Device connected"), "{done}");
    server.advance(20);
    let (status, tokens) = poll(&server, "kubectl", device_code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims(tokens["access_token"].as_str().expect("access token"));
    assert_eq!((access["sub"].as_str(), access["client_id"].as_str()), (Some("alice"), Some("kubectl")));
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");
    assert_eq!(claims(tokens["id_token"].as_str().expect("id")).get("nonce"), None);
    let session_left = tokens["session_expires_in"].as_u64().expect("session_expires_in");
    assert!(session_left <= 3600, "the kubectl client's 1 h cap: {session_left}");

    // Used once.
    server.advance(10);
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "invalid_grant");

    // An ordinary family: rotation works, the session lists the client.
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let rotated = server
        .post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.expect("json");
    let (status, sessions) =
        kit::call(&server, "GET", "/account/sessions", rotated["access_token"].as_str(), None).await;
    assert_eq!(status, 200, "{sessions}");
    let listed = sessions.to_string();
    assert!(listed.contains("kubectl"), "the session lists its client: {listed}");
    // Reuse detection as for any family.
    let reused = server
        .post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(reused.status(), 400);

    // The cap: a second approval's family dies an hour after sign-in.
    let started = start(&server, "kubectl", "openid").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    let done = person(&server, &browser, complete, "alice", "approve").await;
    assert!(done.contains("Device connected"), "signed in already: no sign-in form; {done}");
    let (status, tokens) = poll(&server, "kubectl", device_code).await;
    assert_eq!(status, 200, "{tokens}");
    // Refreshed every 20 minutes (within the idle timeout), it lives until
    // an hour after the sign-in, not the global 12 hours.
    let mut refresh = tokens["refresh_token"].as_str().expect("refresh").to_owned();
    for _ in 0..2 {
        server.advance(1200);
        let resp = server
            .post_form(
                "/token",
                None,
                &[("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", &refresh)],
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    }
    server.advance(1200);
    let late = server
        .post_form(
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(late.status(), 400, "past the client's 1 h maximum lifetime");
    let late: Value = late.json().await.expect("json");
    assert_eq!(error(&late), "invalid_grant", "{late}");
}

#[tokio::test]
async fn a_denied_request_answers_access_denied_and_an_expired_one_expired_token() {
    let server = ManualServer::start(&config(""), &[("TENURE_DEVICE_CODE_TTL", "2m")]).await;
    let browser = Browser::new();
    let started = start(&server, "kubectl", "openid").await;
    assert_eq!(started["expires_in"], 120);
    let device_code = started["device_code"].as_str().expect("device_code");
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    let done = person(&server, &browser, complete, "bob", "deny").await;
    assert!(done.contains("Request denied"), "{done}");
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "access_denied");
    server.advance(6);
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "access_denied", "for good");

    let started = start(&server, "kubectl", "openid").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let user_code = started["user_code"].as_str().expect("user_code");
    server.advance(120);
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "expired_token");
    // The person arrives too late: a clear page, nothing to approve.
    let page = browser.get(&server, &format!("/device?user_code={user_code}")).await.text().await.expect("page");
    let csrf = input_value(&page, "csrf_token").expect("csrf");
    let late = browser.post_form(&server, "/device", &[("csrf_token", &csrf), ("user_code", user_code)]).await;
    assert_eq!(late.status(), 410);
    assert!(late.text().await.expect("page").contains("This code has expired"));
    // And a code used already.
    let started = start(&server, "kubectl", "openid").await;
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    assert!(person(&server, &browser, complete, "bob", "approve").await.contains("Device connected"));
    let (status, _) = poll(&server, "kubectl", started["device_code"].as_str().expect("code")).await;
    assert_eq!(status, 200);
    let user_code = started["user_code"].as_str().expect("user_code");
    let used = browser.post_form(&server, "/device", &[("csrf_token", &csrf), ("user_code", user_code)]).await;
    assert_eq!(used.status(), 410);
    assert!(used.text().await.expect("page").contains("already been used"));
}

#[tokio::test]
async fn wrong_user_codes_are_throttled_and_forms_need_the_csrf_token() {
    let server = Server::start(&config(""), &[]);
    let browser = Browser::new();
    let started = start(&server, "kubectl", "openid").await;
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    // Sign in through the device page, then enter wrong codes.
    let path = complete.strip_prefix(&server.url("")).expect("on the issuer");
    let page = browser.get(&server, path).await.text().await.expect("page");
    let form = [
        ("username", "alice"),
        ("password", "alice-password"),
        ("csrf_token", &input_value(&page, "csrf_token").expect("csrf")),
        ("return_to", &input_value(&page, "return_to").expect("return_to")),
    ];
    assert_eq!(browser.post_form(&server, "/device/login", &form).await.status(), 303);
    let page = browser.get(&server, "/device").await.text().await.expect("page");
    let csrf = input_value(&page, "csrf_token").expect("csrf");

    let no_csrf = browser.post_form(&server, "/device", &[("user_code", "BCDF-GHJK")]).await;
    assert_eq!(no_csrf.status(), 400, "no CSRF token, nothing looked up");
    let approve_without = browser
        .post_form(
            &server,
            "/device/decision",
            &[("user_code", started["user_code"].as_str().expect("code")), ("action", "approve")],
        )
        .await;
    assert_eq!(approve_without.status(), 400);

    let mut statuses = Vec::new();
    for wrong in ["BCDF-GHJK", "bcdf ghjl", "nonsense", "BCDF-GHJM", "BCDF-GHJN", "BCDF-GHJP"] {
        let resp = browser.post_form(&server, "/device", &[("csrf_token", &csrf), ("user_code", wrong)]).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 400 {
            assert!(resp.text().await.expect("page").contains("That code is not valid"));
        } else {
            assert!(resp.headers().contains_key("retry-after"));
            assert!(resp.text().await.expect("page").contains("Too many wrong codes"));
        }
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429], "five wrong codes, then locked like a password");
    // Locked: even the right code waits.
    let right = started["user_code"].as_str().expect("code");
    let resp = browser.post_form(&server, "/device", &[("csrf_token", &csrf), ("user_code", right)]).await;
    assert_eq!(resp.status(), 429);
    let (status, body) = poll(&server, "kubectl", started["device_code"].as_str().expect("code")).await;
    assert_eq!((status, error(&body)), (400, "authorization_pending"), "nothing was approved");
}

/// The whole flow with the person in Chromium: open the link, sign in, see
/// the client and the scopes, approve; the tool then gets its tokens.
#[tokio::test]
async fn the_whole_flow_in_chromium() {
    let Some(chromium) = Chromium::start().await else { return };
    let server = Server::start(&config(""), &[]);
    let started = start(&server, "kubectl", "openid profile").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    chromium.goto(started["verification_uri_complete"].as_str().expect("complete")).await;
    chromium.fill("input[name=username]", "alice").await;
    chromium.fill("input[name=password]", "alice-password").await;
    chromium.click("button[type=submit]").await;
    let input = chromium.wait_for("input[name=user_code]").await;
    assert_eq!(input.prop("value").await.expect("value").as_deref(), started["user_code"].as_str(), "prefilled");
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "authorization_pending", "not by the link alone");
    chromium.click("button[type=submit]").await;
    chromium.wait_for_text("h1", "Allow access?").await;
    assert_eq!(chromium.text("p.code").await, started["user_code"].as_str().expect("code"));
    assert!(chromium.text("ul.scopes").await.contains("See your name and username"));
    assert!(chromium.text("p.lead").await.contains("kubectl"));
    chromium.click("button[value=approve]").await;
    chromium.wait_for_text("h1", "Device connected").await;
    let errors = chromium.console_errors().await;
    assert!(errors.is_empty(), "console errors or CSP violations: {errors:#?}");
    let (status, tokens) = poll(&server, "kubectl", device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
    chromium.close().await;
}

/// The same flow on PostgreSQL: the requests, the answer and the one
/// redemption are the database's.
#[tokio::test]
async fn the_same_flow_on_postgres() {
    let Some(db) = postgres::database().await else { return };
    postgres::migrate(&db.url);
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let server = Server::start(&config(""), &env);
    let started = start(&server, "kubectl", "openid").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    assert_eq!(error(&poll(&server, "kubectl", device_code).await.1), "authorization_pending");
    let browser = Browser::new();
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    assert!(person(&server, &browser, complete, "alice", "approve").await.contains("Device connected"));
    let (a, b, c, d) = tokio::join!(
        poll(&server, "kubectl", device_code),
        poll(&server, "kubectl", device_code),
        poll(&server, "kubectl", device_code),
        poll(&server, "kubectl", device_code),
    );
    let polls = [a, b, c, d];
    let issued = polls.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(issued, 1, "racing polls: one gets the tokens: {polls:?}");
    assert!(polls.iter().filter(|(s, _)| *s != 200).all(|(_, b)| error(b) == "invalid_grant"), "{polls:?}");
    let denied = start(&server, "kubectl", "openid").await;
    let complete = denied["verification_uri_complete"].as_str().expect("complete");
    assert!(person(&server, &browser, complete, "alice", "deny").await.contains("Request denied"));
    assert_eq!(
        error(&poll(&server, "kubectl", denied["device_code"].as_str().expect("code")).await.1),
        "access_denied"
    );
}

/// A real device-flow client, unmodified: oauth2-rs (`exchange_device_code`,
/// `exchange_device_access_token`) against the real binary, the person
/// approving over HTTP while it polls. Its sleeps are the test's: the first
/// one it asks for (the 5 s interval) lasts until the person has approved.
#[tokio::test]
async fn the_oauth2_crate_signs_in_with_the_device_flow() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
    };
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let server = Server::start(&config(""), &[]);
    let client = BasicClient::new(ClientId::new("kubectl".to_owned()))
        .set_device_authorization_url(DeviceAuthorizationUrl::new(server.url("/device_authorization")).expect("url"))
        .set_token_uri(TokenUrl::new(server.url("/token")).expect("url"));
    // oauth2-rs asks for a client that follows no redirects (SSRF).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("openid".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .request_async(&http)
        .await
        .expect("the device authorization request");
    assert_eq!(details.interval(), Duration::from_secs(5));
    assert_eq!(details.verification_uri().as_str(), server.url("/device"));
    let complete = details.verification_uri_complete().expect("verification_uri_complete").secret().clone();

    let (polled, approved) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let waits = Arc::new(Mutex::new(Vec::new()));
    let sleep = {
        let (polled, approved, waits) = (polled.clone(), approved.clone(), waits.clone());
        move |wait: Duration| {
            waits.lock().expect("waits").push(wait);
            polled.notify_one();
            let approved = approved.clone();
            async move { approved.notified().await }
        }
    };
    let polling = client.exchange_device_access_token(&details).request_async(&http, sleep, None);
    let person = async {
        polled.notified().await;
        let done = person(&server, &Browser::new(), &complete, "alice", "approve").await;
        assert!(done.contains("Device connected"), "{done}");
        approved.notify_one();
    };
    let (token, ()) = tokio::join!(polling, person);
    let token = token.expect("the tokens");
    assert_eq!(*waits.lock().expect("waits"), [Duration::from_secs(5)], "one authorization_pending, then the tokens");
    let access = claims(token.access_token().secret());
    assert_eq!((access["sub"].as_str(), access["client_id"].as_str()), (Some("alice"), Some("kubectl")));
    assert!(token.refresh_token().is_some());
    assert!(token.expires_in().is_some_and(|e| e <= Duration::from_secs(3600)));

    // The family ends with the person's session, and says why (SPEC 14).
    let access = token.access_token().secret();
    let (status, _) = kit::call(&server, "DELETE", "/account/sessions", Some(access), None).await;
    assert_eq!(status, 204);
    let refresh = token.refresh_token().expect("refresh").secret();
    let form = [("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", refresh.as_str())];
    let ended: Value = server.post_form("/token", None, &form).await.json().await.expect("json");
    assert_eq!(error(&ended), "invalid_grant");
    assert_eq!(ended["session_end_reason"], "signed_out", "{ended}");
    assert!(!kit::introspect_active(&server, access).await, "its access token is dead at once");
}

/// The admin API (and so the console and the CLI, which call it) allows
/// the grant on a client: a public kubectl client with no redirect URI and
/// a 1 h cap is created and used at once; a public client still cannot
/// take the grants that need a secret.
#[tokio::test]
async fn the_admin_api_allows_the_grant_on_a_client() {
    let server = Server::start(&config(kit::ROOT_AUTOMATION), &[]);
    let root = kit::root_token(&server).await;
    let body = serde_json::json!({
        "id": "kubelogin",
        "name": "kubelogin",
        "public": true,
        "grant_types": [GRANT, "refresh_token"],
        "scopes": ["openid", "groups"],
        "session": {"max_lifetime": 3600},
    });
    let (status, created) = kit::call(&server, "POST", "/admin/clients", Some(&root), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let (_, shown) = kit::call(&server, "GET", "/admin/clients/kubelogin", Some(&root), None).await;
    assert!(shown.to_string().contains(GRANT), "{shown}");
    let started = start(&server, "kubelogin", "openid groups").await;
    let complete = started["verification_uri_complete"].as_str().expect("complete");
    assert!(person(&server, &Browser::new(), complete, "alice", "approve").await.contains("kubelogin is signed in"));
    // The approval is audited, with the session that gave it.
    let (_, audit) = kit::call(&server, "GET", "/admin/audit?kind=device_approved", Some(&root), None).await;
    let event = &audit["events"][0];
    assert_eq!(
        (event["actor"].as_str(), event["target"].as_str()),
        (Some("alice"), Some("client:kubelogin")),
        "{audit}"
    );
    assert_eq!(event["details"]["scope"], "groups openid", "{audit}");
    let bad = serde_json::json!({"id": "typo", "public": true, "grant_types": ["device_code"]});
    let (status, refused) = kit::call(&server, "POST", "/admin/clients", Some(&root), Some(bad)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains(GRANT), "the message names the grant type: {refused}");
}

/// The screenshots of `/device` in docs/device/ (run on purpose:
/// `cargo test --test integration device::screenshots -- --ignored`).
#[tokio::test]
#[ignore = "writes docs/device/*.png"]
async fn screenshots() {
    let Some(chromium) = Chromium::start().await else { return };
    let server = ManualServer::start(&config(""), &[]).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/device");
    std::fs::create_dir_all(&dir).expect("docs/device");
    chromium.client.set_window_size(720, 900).await.expect("window size");
    let shoot = |name: &'static str| {
        let (chromium, dir) = (&chromium, dir.clone());
        async move {
            std::fs::write(dir.join(format!("{name}.png")), chromium.client.screenshot().await.expect("png"))
                .expect("write");
        }
    };
    let started = start(&server, "kubectl", "openid profile groups").await;
    chromium.goto(started["verification_uri_complete"].as_str().expect("complete")).await;
    chromium.wait_for("input[name=password]").await;
    shoot("sign-in").await;
    chromium.fill("input[name=username]", "alice").await;
    chromium.fill("input[name=password]", "alice-password").await;
    chromium.click("button[type=submit]").await;
    chromium.wait_for("input[name=user_code]").await;
    shoot("enter-code").await;
    chromium.fill("input[name=user_code]", "BCDF-GHJK").await;
    chromium.click("button[type=submit]").await;
    chromium.wait_for("#form-error").await;
    shoot("wrong-code").await;
    chromium.fill("input[name=user_code]", &started["user_code"].as_str().expect("code").to_lowercase()).await;
    chromium.click("button[type=submit]").await;
    chromium.wait_for_text("h1", "Allow access?").await;
    shoot("confirm").await;
    chromium.click("button[value=approve]").await;
    chromium.wait_for_text("h1", "Device connected").await;
    shoot("approved").await;

    let denied = start(&server, "kubectl", "openid").await;
    chromium.goto(denied["verification_uri_complete"].as_str().expect("complete")).await;
    chromium.click("button[type=submit]").await;
    chromium.click("button[value=deny]").await;
    chromium.wait_for_text("h1", "Request denied").await;
    shoot("denied").await;

    let late = start(&server, "kubectl", "openid").await;
    server.advance(600);
    chromium.goto(late["verification_uri_complete"].as_str().expect("complete")).await;
    chromium.click("button[type=submit]").await;
    chromium.wait_for_text("h1", "Code expired").await;
    shoot("expired").await;

    // Five wrong codes lock the session's attempts (the earlier one has
    // left the 5-minute window); the sixth is refused.
    for _ in 0..6 {
        chromium.goto(&server.url("/device")).await;
        chromium.fill("input[name=user_code]", "ZZZZ-ZZZZ").await;
        chromium.click("button[type=submit]").await;
        chromium.wait_for("h1").await;
    }
    chromium.wait_for_text("h1", "Too many attempts").await;
    shoot("too-many-attempts").await;
    // The 4xx answers are logged as failed loads; nothing else may be.
    let errors: Vec<_> = chromium
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.message.contains("Failed to load resource"))
        .collect();
    assert!(errors.is_empty(), "console errors or CSP violations: {errors:#?}");
    chromium.close().await;
}

/// `on_session_limit = "ask"` asks on the device pages too: signing in
/// there at the limit shows the "too many sessions" page; cancelling goes
/// back to the device pages signed out; ending a session signs in and goes
/// on with the code typed, and the ended session's device is signed out.
#[tokio::test]
async fn at_the_session_limit_the_device_sign_in_asks_which_session_to_end() {
    let server = Server::start(&config("\n[session]\nmax_sessions = 1\non_session_limit = \"ask\"\n"), &[]);
    // A first device signed in as alice, from the laptop's browser.
    let first = start(&server, "kubectl", "openid").await;
    let complete = first["verification_uri_complete"].as_str().expect("complete");
    let done = person(&server, &Browser::new(), complete, "alice", "approve").await;
    assert!(done.contains("Device connected"), "{done}");
    let (status, first_tokens) = poll(&server, "kubectl", first["device_code"].as_str().expect("code")).await;
    assert_eq!(status, 200, "{first_tokens}");

    // A second device, approved from the phone's browser: at the limit.
    let second = start(&server, "kubectl", "openid").await;
    let user_code = second["user_code"].as_str().expect("user code");
    let complete = second["verification_uri_complete"].as_str().expect("complete");
    let path = complete.strip_prefix(&server.url("")).expect("on the issuer");
    let phone = Browser::new();
    let sign_in = |page: String| {
        let phone = &phone;
        let server = &server;
        async move {
            let form = [
                ("username", "alice".to_owned()),
                ("password", "alice-password".to_owned()),
                ("csrf_token", input_value(&page, "csrf_token").expect("csrf")),
                ("return_to", input_value(&page, "return_to").expect("return_to")),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            phone.post_form(server, "/device/login", &form).await
        }
    };
    let page = phone.get(&server, path).await.text().await.expect("page");
    let at_limit = sign_in(page).await;
    assert_eq!(at_limit.status(), 200);
    let html = at_limit.text().await.expect("page");
    assert!(html.contains("Too many sessions") && html.contains("the device sign-in"), "{html}");
    assert!(html.contains("kubectl"), "the live session's application: {html}");

    // Cancel: back to the device pages, still signed out.
    let form = [
        ("csrf_token", input_value(&html, "csrf_token").expect("csrf")),
        ("pending", input_value(&html, "pending").expect("pending")),
        ("action", "cancel".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cancelled = phone.post_form(&server, "/login/session-limit", &form).await;
    assert_eq!(cancelled.status(), 303);
    let back = location(&cancelled).expect("back");
    assert_eq!(back, format!("/device?user_code={user_code}"));
    let page = phone.get(&server, &back).await.text().await.expect("page");
    assert!(page.contains("name=\"password\""), "cancelled: signed out: {page}");

    // Sign in again and end the laptop's session: signed in, on with the code.
    let html = sign_in(page).await.text().await.expect("page");
    let form = [
        ("csrf_token", input_value(&html, "csrf_token").expect("csrf")),
        ("pending", input_value(&html, "pending").expect("pending")),
        ("action", "end".to_owned()),
        ("end", input_value(&html, "end").expect("a session to end")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let chosen = phone.post_form(&server, "/login/session-limit", &form).await;
    assert_eq!(chosen.status(), 303, "{}", chosen.text().await.unwrap_or_default());
    let next = location(&chosen).expect("next");
    assert_eq!(next, format!("/device?user_code={user_code}"));
    let page = phone.get(&server, &next).await.text().await.expect("page");
    let done = confirm(&server, &phone, &page, "approve").await;
    assert!(done.contains("Device connected"), "{done}");
    let (status, tokens) = poll(&server, "kubectl", second["device_code"].as_str().expect("code")).await;
    assert_eq!(status, 200, "{tokens}");

    // The laptop's device lost its session.
    let refresh = |token: String| {
        let server = &server;
        async move {
            let form = [("grant_type", "refresh_token"), ("client_id", "kubectl"), ("refresh_token", token.as_str())];
            server.post_form("/token", None, &form).await.status().as_u16()
        }
    };
    assert_eq!(refresh(first_tokens["refresh_token"].as_str().expect("refresh").to_owned()).await, 400);
    assert_eq!(refresh(tokens["refresh_token"].as_str().expect("refresh").to_owned()).await, 200);
}
