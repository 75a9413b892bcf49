//! Logout end to end (SPEC 4 `/logout`, SPEC 5 back-channel logout): OIDC
//! RP-Initiated Logout 1.0 with and without `id_token_hint`, the
//! confirmation page against logout CSRF, registered post-logout redirects
//! only, and OIDC Back-Channel Logout 1.0 tokens delivered to a relying party
//! listening on loopback — retried after a failure and surviving a SIGKILL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::support::flow::{Browser, code_from, input_value, location, query_param, set_cookie};
use crate::support::kit::{WEB, WEB_REDIRECT, redeem, refresh, user, web_client};
use crate::support::{Server, config_with, eventually};

const AFTER_LOGOUT: &str = "http://127.0.0.1:9000/signed-out";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn config(backchannel_uri: &str) -> String {
    config_with(&format!(
        r#"{}name = "Web Shop"
backchannel_logout_uri = "{backchannel_uri}"
post_logout_redirect_uris = ["{AFTER_LOGOUT}"]
{}"#,
        web_client(&["openid", "profile", "email"]),
        user("alice", &[])
    ))
}

/// A relying party's back-channel logout endpoint on 127.0.0.1: it records
/// every request and answers with the queued statuses, then 200. Stopped
/// when dropped.
struct RelyingParty {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    reserved: Option<tokio::net::TcpSocket>,
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    content_type: String,
    body: String,
}

#[derive(Clone)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

async fn record(State(r): State<Recorder>, headers: HeaderMap, body: String) -> StatusCode {
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    r.received.lock().unwrap().push(Received { at: Instant::now(), content_type, body });
    let status = r.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

impl RelyingParty {
    /// A port of its own that nothing listens on yet: connections are
    /// refused until [`RelyingParty::listen`].
    fn down(statuses: &[u16]) -> RelyingParty {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        RelyingParty {
            port,
            received: Arc::default(),
            statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
            task: None,
            reserved: Some(socket),
        }
    }

    async fn up(statuses: &[u16]) -> RelyingParty {
        let mut rp = RelyingParty::down(statuses);
        rp.listen();
        rp
    }

    fn listen(&mut self) {
        let listener = self.reserved.take().expect("not listening yet").listen(64).unwrap();
        let recorder = Recorder { received: self.received.clone(), statuses: self.statuses.clone() };
        let app = axum::Router::new().route("/bc", axum::routing::post(record)).with_state(recorder);
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/bc", self.port)
    }

    /// The first `n` requests, waiting up to `within` for them.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let arrived = eventually(within, || async { self.received.lock().unwrap().len() >= n }).await;
        let received = self.received.lock().unwrap().clone();
        assert!(arrived, "expected {n} back-channel logout request(s) within {within:?}, got {}", received.len());
        received
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What a signed-in browser at `web` holds.
struct SignedIn {
    browser: Browser,
    /// The `tenure_session` cookie value, to replay it after logout.
    session_cookie: String,
    id_token: String,
    access_token: String,
    refresh_token: String,
    sid: String,
}

/// Sign alice in at `web` through the sign-in page and redeem the code.
async fn sign_in(server: &Server) -> SignedIn {
    let browser = Browser::new();
    let query = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", WEB_REDIRECT),
        ("scope", "openid email"),
        ("state", "st"),
        ("nonce", "n-1"),
    ];
    let page = browser.authorize(server, &query).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let posted = browser.submit_sign_in(server, &page, "alice", "alice-password", false).await;
    assert_eq!(posted.status(), 303);
    let session_cookie = posted
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().unwrap().strip_prefix("tenure_session="))
        .map(|rest| rest.split(';').next().unwrap().to_owned())
        .next()
        .expect("a session cookie");
    let code = code_from(browser.get(server, &location(&posted).unwrap()).await).await;
    let body = redeem(server, WEB, &code, WEB_REDIRECT, None).await.body;
    let id_token = body["id_token"].as_str().unwrap().to_owned();
    let jwks = server.jwks().await;
    let id = crate::support::verify(&id_token, &jwks, &server.base, "web").claims;
    SignedIn {
        browser,
        session_cookie,
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        sid: id["sid"].as_str().unwrap().to_owned(),
        id_token,
    }
}

async fn logout(browser: &Browser, server: &Server, query: &[(&str, &str)]) -> reqwest::Response {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    browser.get(server, &format!("/logout?{query}")).await
}

async fn refresh_status(server: &Server, refresh_token: &str) -> (u16, serde_json::Value) {
    let resp = refresh(server, WEB, refresh_token).await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn userinfo_status(server: &Server, access_token: &str) -> u16 {
    server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await.unwrap().status().as_u16()
}

/// `/authorize?prompt=none` with exactly this session cookie (or none).
async fn prompt_none(server: &Server, session_cookie: Option<&str>) -> reqwest::Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", WEB_REDIRECT),
            ("scope", "openid"),
            ("prompt", "none"),
        ])
        .finish();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = http.get(server.url(&format!("/authorize?{query}")));
    if let Some(c) = session_cookie {
        req = req.header("cookie", format!("tenure_session={c}"));
    }
    req.send().await.unwrap()
}

/// The logout token of a back-channel request, checked against the JWKS with
/// jsonwebtoken (Back-Channel Logout 2.4, 2.5); returns its claims.
async fn verified_logout_token(server: &Server, received: &Received) -> serde_json::Value {
    assert_eq!(received.content_type, "application/x-www-form-urlencoded");
    let params: Vec<(String, String)> = form_urlencoded::parse(received.body.as_bytes()).into_owned().collect();
    assert_eq!(params.len(), 1, "only logout_token is posted: {params:?}");
    assert_eq!(params[0].0, "logout_token");
    let token = &params[0].1;
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = crate::support::verify(token, &server.jwks().await, &server.base, "web").claims;
    assert_eq!(claims["events"], serde_json::json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "a logout token never has a nonce: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert!(exp > iat && exp - iat <= 120, "at most two minutes: iat {iat}, exp {exp}");
    claims
}

#[tokio::test]
async fn rp_initiated_logout_with_a_hint_ends_the_session_everywhere() {
    let rp = RelyingParty::up(&[]).await;
    let server = Server::start(&config(&rp.uri()), &[]);
    let alice = sign_in(&server).await;
    let (status, body) = refresh_status(&server, &alice.refresh_token).await;
    assert_eq!(status, 200);
    let refresh_token = body["refresh_token"].as_str().unwrap();

    let resp = logout(
        &alice.browser,
        &server,
        &[("id_token_hint", &alice.id_token), ("post_logout_redirect_uri", AFTER_LOGOUT), ("state", "bye 1&2")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some(format!("{AFTER_LOGOUT}?state=bye+1%262").as_str()));
    let cleared = set_cookie(&resp, "tenure_session").expect("the session cookie is cleared");
    assert!(cleared.starts_with("tenure_session=;") && cleared.contains("Max-Age=0"), "{cleared}");

    let (status, body) = refresh_status(&server, refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(userinfo_status(&server, &alice.access_token).await, 401);
    for cookie in [None, Some(alice.session_cookie.as_str())] {
        let resp = prompt_none(&server, cookie).await;
        assert_eq!(resp.status(), 302);
        let to = location(&resp).unwrap();
        assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"), "{to}");
    }
    let resp = alice
        .browser
        .authorize(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT), ("prompt", "none")],
        )
        .await;
    assert_eq!(query_param(&location(&resp).unwrap(), "error").as_deref(), Some("login_required"));

    let received = rp.wait_for(1, Duration::from_secs(10)).await;
    let claims = verified_logout_token(&server, &received[0]).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], alice.sid.as_str(), "the ID token's session");
    assert_eq!(claims["aud"], "web");

    // Logging out again is harmless: without a session cookie the user is
    // asked (harden.rs), and confirming ends nothing; the redirect stands.
    let again = Browser::new();
    let resp =
        logout(&again, &server, &[("id_token_hint", &alice.id_token), ("post_logout_redirect_uri", AFTER_LOGOUT)])
            .await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let confirm: Vec<(String, String)> = ["csrf_token", "id_token_hint", "post_logout_redirect_uri"]
        .iter()
        .map(|n| ((*n).to_owned(), input_value(&page, n).unwrap()))
        .collect();
    let confirm: Vec<(&str, &str)> = confirm.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let resp = again.post_form(&server, "/logout", &confirm).await;
    assert_eq!(location(&resp).as_deref(), Some(AFTER_LOGOUT));
}

#[tokio::test]
async fn only_registered_post_logout_redirects_and_matching_clients_are_accepted() {
    let rp = RelyingParty::up(&[]).await;
    let server = Server::start(&config(&rp.uri()), &[]);
    let alice = sign_in(&server).await;
    let hint = alice.id_token.as_str();
    for query in [
        vec![("id_token_hint", hint), ("post_logout_redirect_uri", "http://evil.example/")],
        vec![("id_token_hint", hint), ("post_logout_redirect_uri", "http://127.0.0.1:9000/signed-out/")],
        vec![("id_token_hint", hint), ("client_id", "orders-api")],
        vec![("client_id", "nobody"), ("post_logout_redirect_uri", AFTER_LOGOUT)],
        vec![("post_logout_redirect_uri", AFTER_LOGOUT)],
        vec![("id_token_hint", "not-a-token"), ("post_logout_redirect_uri", AFTER_LOGOUT)],
        vec![("id_token_hint", alice.access_token.as_str())],
    ] {
        let resp = logout(&alice.browser, &server, &query).await;
        assert_eq!(resp.status(), 400, "{query:?}");
        assert!(location(&resp).is_none(), "an error page, never a redirect: {query:?}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        assert!(set_cookie(&resp, "tenure_session").is_none(), "nothing ended: {query:?}");
    }
    let (status, _) = refresh_status(&server, &alice.refresh_token).await;
    assert_eq!(status, 200, "the session lives on");
    assert!(rp.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_hint_the_user_confirms_before_anything_ends() {
    let rp = RelyingParty::up(&[]).await;
    let server = Server::start(&config(&rp.uri()), &[]);
    let alice = sign_in(&server).await;

    let resp = logout(
        &alice.browser,
        &server,
        &[("client_id", "web"), ("post_logout_redirect_uri", AFTER_LOGOUT), ("state", "s-9"), ("ui_locales", "fr")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(location(&resp).is_none());
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9000"), "the form may end at the RP: {csp}");
    let page = resp.text().await.unwrap();
    assert!(page.contains(r#"<form method="post" action="/logout">"#), "{page}");
    assert!(page.contains("Web Shop"));
    let csrf_token = input_value(&page, "csrf_token").expect("a CSRF token");

    // Merely showing the page (or a forged post) ends nothing.
    let (status, body) = refresh_status(&server, &alice.refresh_token).await;
    assert_eq!(status, 200);
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let forged = alice.browser.post_form(&server, "/logout", &[("csrf_token", "forged"), ("client_id", "web")]).await;
    assert_eq!(forged.status(), 400);
    let elsewhere = Browser::new().post_form(&server, "/logout", &[("csrf_token", &csrf_token)]).await;
    assert_eq!(elsewhere.status(), 400, "the token is bound to this browser's cookie");
    let code = alice
        .browser
        .code_for(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT), ("prompt", "none")],
        )
        .await;
    assert!(!code.is_empty(), "still signed in");
    assert!(rp.received.lock().unwrap().is_empty());

    let mut form = vec![("csrf_token", csrf_token.clone())];
    for name in ["client_id", "post_logout_redirect_uri", "state"] {
        form.push((name, input_value(&page, name).unwrap_or_else(|| panic!("hidden input {name}"))));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = alice.browser.post_form(&server, "/logout", &form).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp).as_deref(), Some(format!("{AFTER_LOGOUT}?state=s-9").as_str()));
    let (status, _) = refresh_status(&server, &refresh_token).await;
    assert_eq!(status, 400);
    let resp = prompt_none(&server, Some(&alice.session_cookie)).await;
    assert_eq!(query_param(&location(&resp).unwrap(), "error").as_deref(), Some("login_required"));
    let received = rp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(verified_logout_token(&server, &received[0]).await["sid"], alice.sid.as_str());

    // Without a redirect, the browser lands on a page.
    let resp = logout(&Browser::new(), &server, &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("You are signed out"));
}

#[tokio::test]
async fn a_failed_delivery_is_retried_within_30_seconds() {
    let rp = RelyingParty::up(&[500]).await;
    let server = Server::start(&config(&rp.uri()), &[]);
    let alice = sign_in(&server).await;
    let resp = logout(&alice.browser, &server, &[("id_token_hint", &alice.id_token)]).await;
    assert_eq!(resp.status(), 200, "signed out, no redirect asked for");

    let first = rp.wait_for(1, Duration::from_secs(10)).await;
    let both = rp.wait_for(2, Duration::from_secs(30)).await;
    let gap = both[1].at.duration_since(first[0].at);
    assert!(gap <= Duration::from_secs(20), "first retry within 30 s of the failure (15 s backoff): {gap:?}");
    let claims = verified_logout_token(&server, &both[1]).await;
    assert_eq!(claims["sid"], alice.sid.as_str());
    // Delivered: no third request.
    assert!(!eventually(Duration::from_secs(2), || async { rp.received.lock().unwrap().len() > 2 }).await);
}

#[tokio::test]
async fn a_queued_delivery_survives_a_crash() {
    let mut rp = RelyingParty::down(&[]);
    let config = config(&rp.uri());
    let server = Server::start(&config, &[]);
    let alice = sign_in(&server).await;
    let resp = logout(&alice.browser, &server, &[("id_token_hint", &alice.id_token)]).await;
    assert_eq!(resp.status(), 200);

    let dir = server.kill_keep_dir();
    rp.listen();
    let server = Server::start_in(dir, &config, &[]);
    let received = rp.wait_for(1, Duration::from_secs(30)).await;
    let claims = verified_logout_token(&server, &received[0]).await;
    assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some("alice"), Some(alice.sid.as_str())));
    let (status, _) = refresh_status(&server, &alice.refresh_token).await;
    assert_eq!(status, 400, "the logout itself survived too");
}
