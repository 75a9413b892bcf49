//! Abuse of authentication end to end (SPEC 4 sign-in page, SPEC 7): the
//! throttles hold under real concurrency, argon2 runs are bounded, a cold
//! start costs one verification per secret, attacker-chosen keys take no
//! room, spraying and lock-outs are per address (behind trusted proxies
//! only), failed sign-ins are audited in aggregate, and a new sign-in ends
//! the browser's previous session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;

use crate::support::flow::{Browser, code_from, input_value, location, pkce_pair};
use crate::support::kit::{WEB, WEB_REDIRECT as REDIRECT, redeem, user, web_client};
use crate::support::{Server, config_with, eventually};

fn config(backchannel_uri: Option<&str>) -> String {
    let backchannel = backchannel_uri.map(|u| format!("backchannel_logout_uri = \"{u}\"\n")).unwrap_or_default();
    config_with(&format!(
        "{}{backchannel}{}{}{}",
        web_client(&["openid", "admin"]),
        user("alice", &[]),
        user("bob", &[]),
        user("root", &["system:administer"])
    ))
}

const TRUST_LOOPBACK: (&str, &str) = ("TENURE_TRUSTED_PROXIES", "127.0.0.1");

fn web_query(challenge: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("response_type", "code".to_owned()),
        ("client_id", "web".to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("scope", "openid admin".to_owned()),
        ("code_challenge", challenge.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ];
    q.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    q
}

/// The sign-in page of `browser` (a fresh form with its CSRF token).
async fn sign_in_page(server: &Server, browser: &Browser, extra: &[(&'static str, &'static str)]) -> String {
    let query = web_query("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", extra);
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = browser.authorize(server, &query).await;
    assert_eq!(resp.status(), 200, "the sign-in page");
    resp.text().await.unwrap()
}

/// What a POST /login came back with.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: String,
}

/// Post the form of `page` with `http` (the browser's cookies), from the
/// address `forwarded_for` claims when given.
async fn post_login(
    http: reqwest::Client,
    url: String,
    page: Arc<String>,
    username: String,
    password: String,
    forwarded_for: Option<String>,
) -> Answer {
    let form = [
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("csrf_token", &input_value(&page, "csrf_token").unwrap()),
        ("return_to", &input_value(&page, "return_to").unwrap()),
    ];
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    Answer { status, retry_after, body: resp.text().await.unwrap() }
}

/// One sign-in attempt of `browser` at `server`, from `forwarded_for`.
async fn attempt(
    server: &Server,
    browser: &Browser,
    page: &str,
    user: &str,
    password: &str,
    xff: Option<&str>,
) -> Answer {
    post_login(
        browser.http.clone(),
        server.url("/login"),
        Arc::new(page.to_owned()),
        user.to_owned(),
        password.to_owned(),
        xff.map(str::to_owned),
    )
    .await
}

/// Peak and current resident memory of the server process, in KiB.
fn memory_kib(server: &Server) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {status}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A counter of `/metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or_else(|| panic!("{name} in\n{text}")) as u64
}

/// The whole code flow for `user` in `browser`: (access, refresh, sid).
async fn tokens(
    server: &Server,
    browser: &Browser,
    user: &str,
    extra: &[(&'static str, &'static str)],
) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let query = web_query(&challenge, extra);
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let code = browser.sign_in_for_code(server, &query, user, &format!("{user}-password"), false).await;
    let tokens = redeem(server, WEB, &code, REDIRECT, Some(&verifier)).await;
    (tokens.access(), tokens.refresh())
}

/// Every audit event, newest first (as root).
async fn audit(server: &Server, root_token: &str) -> Vec<Value> {
    let resp = server.http.get(server.url("/admin/audit?limit=100")).bearer_auth(root_token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["events"].as_array().unwrap_or_else(|| panic!("events in {body}")).clone()
}

async fn root_token(server: &Server) -> String {
    tokens(server, &Browser::new(), "root", &[]).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_sign_ins_check_at_most_five_passwords() {
    let server = Server::start(&config(None), &[]);
    let browser = Browser::new();
    let page = Arc::new(sign_in_page(&server, &browser, &[]).await);
    let mut set = JoinSet::new();
    for i in 0..20 {
        let password = if i == 13 { "alice-password".to_owned() } else { format!("wrong-{i}") };
        set.spawn(post_login(browser.http.clone(), server.url("/login"), page.clone(), "alice".into(), password, None));
    }
    let answers = set.join_all().await;
    let checked = answers.iter().filter(|a| a.status == 401 || a.status == 303).count();
    assert!(checked <= 5, "one CSRF pair, 20 at once: at most 5 passwords checked, not {checked}: {answers:?}");
    for refused in answers.iter().filter(|a| a.status != 401 && a.status != 303) {
        assert_eq!(refused.status, 429, "{refused:?}");
        assert!(refused.retry_after.is_some_and(|s| s >= 1), "{refused:?}");
        assert!(refused.body.contains("Too many failed sign-in attempts for this account"), "{}", refused.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_client_secrets_check_at_most_ten() {
    let server = Arc::new(Server::start(&config_with(""), &[]));
    let mut set = JoinSet::new();
    for i in 0..20 {
        let server = server.clone();
        set.spawn(async move {
            let secret = if i == 7 { "orders-secret".to_owned() } else { format!("guess-{i}") };
            let resp = server
                .post_form("/token", Some(("orders-api", &secret)), &[("grant_type", "client_credentials")])
                .await;
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, retry_after, body)
        });
    }
    let answers = set.join_all().await;
    let checked = answers.iter().filter(|(s, _, _)| *s == 401 || *s == 200).count();
    assert!(checked <= 10, "at most 10 secrets checked (the limit), not {checked}: {answers:?}");
    for (status, retry_after, body) in answers.iter().filter(|(s, _, _)| *s != 401 && *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(retry_after.is_some(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sign_ins_of_unknown_users_keep_memory_bounded() {
    let server = Server::start(&config(None), &[TRUST_LOOPBACK, ("TENURE_HASHING_CONCURRENCY", "2")]);
    let browser = Browser::new();
    let page = Arc::new(sign_in_page(&server, &browser, &[]).await);
    let (peak_before, _) = memory_kib(&server);
    let mut set = JoinSet::new();
    for i in 0..40 {
        // 40 addresses, so no throttle stands in for the hashing bound.
        set.spawn(post_login(
            browser.http.clone(),
            server.url("/login"),
            page.clone(),
            format!("nobody-{i}"),
            "guess".into(),
            Some(format!("203.0.113.{i}")),
        ));
    }
    let answers = set.join_all().await;
    let (peak_after, _) = memory_kib(&server);
    for a in &answers {
        assert!(a.status == 401 || a.status == 503, "{a:?}");
    }
    let grown_mib = peak_after.saturating_sub(peak_before) / 1024;
    // Unbounded, 40 argon2 runs at ~19 MiB each took ~800 MiB.
    assert!(grown_mib < 160, "peak RSS grew by {grown_mib} MiB ({peak_before} -> {peak_after} KiB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tiny_hashing_cap_answers_503_with_retry_after() {
    let server = Arc::new(Server::start(
        &config(None),
        &[TRUST_LOOPBACK, ("TENURE_HASHING_CONCURRENCY", "1"), ("TENURE_HASHING_WAIT", "0")],
    ));
    let browser = Browser::new();
    let page = Arc::new(sign_in_page(&server, &browser, &[]).await);
    let mut set = JoinSet::new();
    for i in 0..40 {
        set.spawn(post_login(
            browser.http.clone(),
            server.url("/login"),
            page.clone(),
            format!("nobody-{i}"),
            "guess".into(),
            Some(format!("198.51.100.{i}")),
        ));
    }
    let answers = set.join_all().await;
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!busy.is_empty(), "one hashing slot and no wait: some sign-ins are turned away: {answers:?}");
    for a in &busy {
        assert_eq!(a.retry_after, Some(1));
        assert!(a.body.contains("The server is busy signing in other people. Try again in a moment."), "{}", a.body);
    }
    assert!(answers.iter().all(|a| a.status == 401 || a.status == 503), "{answers:?}");

    let mut set = JoinSet::new();
    for i in 0..20 {
        let server = server.clone();
        set.spawn(async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("grant_type", "client_credentials")])
                .finish();
            let resp = server
                .http
                .post(server.url("/token"))
                .basic_auth("orders-api", Some(format!("guess-{i}")))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-forwarded-for", format!("192.0.2.{i}"))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (status, retry_after, resp.json::<Value>().await.unwrap())
        });
    }
    let answers = set.join_all().await;
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!busy.is_empty(), "{answers:?}");
    for (_, retry_after, body) in busy {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(body["error_description"].as_str().unwrap().contains("busy"), "{body}");
    }
    assert!(metric(&server, "tenure_hashing_busy_total").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_start_stampede_verifies_the_secret_once() {
    let server = Arc::new(Server::start(&config_with(""), &[]));
    let (peak_before, _) = memory_kib(&server);
    let mut set = JoinSet::new();
    for _ in 0..128 {
        let server = server.clone();
        set.spawn(async move {
            server
                .post_form("/token", Some(("orders-api", "orders-secret")), &[("grant_type", "client_credentials")])
                .await
                .status()
                .as_u16()
        });
    }
    let statuses = set.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "every request of the real client succeeds: {statuses:?}");
    assert_eq!(metric(&server, "tenure_secret_verifications_total").await, 1, "one argon2 run for one secret");
    let (peak_after, _) = memory_kib(&server);
    let grown_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(grown_mib < 100, "peak RSS grew by {grown_mib} MiB");
}

#[tokio::test]
async fn huge_client_ids_do_not_grow_the_process() {
    let server = Server::start(&config_with(""), &[]);
    let send = |i: usize| {
        let client_id = format!("{i}{}", "x".repeat(60 * 1024));
        let server = &server;
        async move {
            let resp = server
                .post_form(
                    "/token",
                    None,
                    &[("grant_type", "client_credentials"), ("client_id", &client_id), ("client_secret", "s")],
                )
                .await;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            assert!(body.len() < 2048, "the answer does not echo 60 KiB: {} bytes", body.len());
            status
        }
    };
    // Warm up the allocator and the connection, then measure.
    for i in 0..20 {
        send(i).await;
    }
    let (_, rss_before) = memory_kib(&server);
    for i in 20..320 {
        let status = send(i).await;
        assert!(status == 401 || status == 429, "{status}");
    }
    let (_, rss_after) = memory_kib(&server);
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    // Keyed on the text, 300 such ids kept ~18 MiB for good.
    assert!(grown_mib < 8, "RSS grew by {grown_mib} MiB ({rss_before} -> {rss_after} KiB)");
}

#[tokio::test]
async fn spraying_usernames_from_one_address_is_throttled() {
    let server = Server::start(&config(None), &[]);
    let browser = Browser::new();
    let page = sign_in_page(&server, &browser, &[]).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let a = attempt(&server, &browser, &page, &format!("user-{i}"), "Summer2026!", None).await;
        if a.status == 429 {
            assert!(a.retry_after.is_some_and(|s| (1..=300).contains(&s)), "{a:?}");
            assert!(a.body.contains("Too many failed sign-in attempts from your address. Try again in"), "{}", a.body);
        }
        statuses.push(a.status);
    }
    assert_eq!(&statuses[..20], &[401; 20], "20 failures per address are checked");
    assert_eq!(&statuses[20..], &[429; 10], "then the address waits: {statuses:?}");
    // The address is locked for every username until the lock ends.
    let right = attempt(&server, &browser, &page, "alice", "alice-password", None).await;
    assert_eq!(right.status, 429, "the address lock holds for every username");
}

#[tokio::test]
async fn an_attacker_cannot_lock_out_a_victim_at_another_address() {
    let server = Server::start(&config(None), &[TRUST_LOOPBACK]);
    let attacker = Browser::new();
    let page = sign_in_page(&server, &attacker, &[]).await;
    for _ in 0..5 {
        let a = attempt(&server, &attacker, &page, "alice", "wrong", Some("203.0.113.66")).await;
        assert_eq!(a.status, 401);
    }
    let locked = attempt(&server, &attacker, &page, "alice", "alice-password", Some("203.0.113.66")).await;
    assert_eq!(locked.status, 429, "the attacker's address is locked for alice");
    // Five minutes from the fifth failure, a second or two ago on a loaded machine.
    assert!(locked.retry_after.is_some_and(|s| (297..=300).contains(&s)), "the first lock lasts 5 minutes: {locked:?}");

    // alice, behind the same proxy but at her own address, signs in.
    let victim = Browser::new();
    let page = sign_in_page(&server, &victim, &[]).await;
    let ok = attempt(&server, &victim, &page, "alice", "alice-password", Some("10.9.8.7, 198.51.100.7")).await;
    assert_eq!(ok.status, 303, "{}", ok.body);

    // Her session and the audit log record her address, not the proxy's.
    let root = root_token(&server).await;
    let resp = server.http.get(server.url("/admin/users/alice/sessions")).bearer_auth(&root).send().await.unwrap();
    let sessions: Value = resp.json().await.unwrap();
    let ips: Vec<&str> = sessions["sessions"].as_array().unwrap().iter().map(|s| s["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["198.51.100.7"], "{sessions}");
    let events = audit(&server, &root).await;
    let failed = events.iter().find(|e| e["kind"] == "sign_in_failed").expect("a failed sign-in record");
    assert_eq!(failed["details"]["ip"], "203.0.113.66");
    let signed_in = events.iter().find(|e| e["kind"] == "sign_in" && e["actor"] == "alice").expect("alice's sign-in");
    assert_eq!(signed_in["details"]["ip"], "198.51.100.7");
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let server = Server::start(&config(None), &[]);
    let browser = Browser::new();
    let page = sign_in_page(&server, &browser, &[]).await;
    for i in 0..5 {
        let xff = format!("203.0.113.{i}");
        assert_eq!(attempt(&server, &browser, &page, "alice", "wrong", Some(&xff)).await.status, 401);
    }
    let spoofed = attempt(&server, &browser, &page, "alice", "alice-password", Some("198.51.100.7")).await;
    assert_eq!(spoofed.status, 429, "a made-up X-Forwarded-For is no way around the lock");
    let ok = attempt(&server, &browser, &page, "bob", "bob-password", Some("198.51.100.7")).await;
    assert_eq!(ok.status, 303);
    let root = root_token(&server).await;
    let resp = server.http.get(server.url("/admin/users/bob/sessions")).bearer_auth(&root).send().await.unwrap();
    let sessions: Value = resp.json().await.unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "127.0.0.1", "the peer address: {sessions}");
}

#[tokio::test]
async fn failed_sign_ins_are_aggregated_in_the_audit_log() {
    let server = Server::start(&config(None), &[]);
    let browser = Browser::new();
    let page = sign_in_page(&server, &browser, &[]).await;
    for _ in 0..100 {
        let a = attempt(&server, &browser, &page, "alice", "wrong", None).await;
        assert!(a.status == 401 || a.status == 429, "{a:?}");
    }
    let root = root_token(&server).await;
    let events = audit(&server, &root).await;
    let failed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "sign_in_failed").collect();
    assert_eq!(failed.len(), 1, "100 failures, one record: {failed:#?}");
    let details = &failed[0]["details"];
    assert_eq!(failed[0]["actor"], "alice");
    assert_eq!(details["ip"], "127.0.0.1");
    assert_eq!(details["count"], 100);
    assert_eq!(details["wrong_password"], 5);
    assert_eq!(details["throttled"], 95);
}

/// A back-channel logout endpoint that records the bodies it receives.
async fn logout_receiver() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/bc", listener.local_addr().unwrap());
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (uri, received, task)
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().split_once('=').unwrap().1.to_owned())
}

#[tokio::test]
async fn a_new_sign_in_ends_the_browsers_previous_session() {
    let (uri, received, task) = logout_receiver().await;
    let server = Server::start(&config(Some(&uri)), &[]);
    let browser = Browser::new();
    let (alice_access, alice_refresh) = tokens(&server, &browser, "alice", &[]).await;
    let alice_sid = claims(&alice_access)["sid"].as_str().unwrap().to_owned();

    // The same browser signs in again (as bob) on a fresh form.
    let page = sign_in_page(&server, &browser, &[("prompt", "login")]).await;
    let csrf_before = input_value(&page, "csrf_token").unwrap();
    let form = [
        ("username", "bob"),
        ("password", "bob-password"),
        ("csrf_token", csrf_before.as_str()),
        ("return_to", &input_value(&page, "return_to").unwrap()),
    ];
    let resp = browser.post_form(&server, "/login", &form).await;
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(&resp, "tenure_session").is_some());
    assert!(set_cookie(&resp, "tenure_csrf").is_some(), "a fresh CSRF cookie comes with the new session");
    let next = location(&resp).unwrap();
    code_from(browser.get(&server, &next).await).await;

    // The old form's token no longer matches the browser's CSRF cookie.
    let replay = browser.post_form(&server, "/login", &form).await;
    assert_eq!(replay.status(), 400, "the form of the signed-out state has expired");

    // alice's session is over: her refresh token is dead, her app was told.
    let refreshed = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &alice_refresh)],
        )
        .await;
    assert_eq!(refreshed.status(), 400);
    let told = eventually(Duration::from_secs(10), || async { !received.lock().unwrap().is_empty() }).await;
    assert!(told, "a back-channel logout for alice's session");
    let body = received.lock().unwrap()[0].clone();
    let token = form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "logout_token").unwrap().1.into_owned();
    assert_eq!(claims(&token)["sid"], alice_sid.as_str());

    let root = root_token(&server).await;
    let events = audit(&server, &root).await;
    let ended = events
        .iter()
        .find(|e| e["kind"] == "session_revoked" && e["target"] == format!("session:{alice_sid}"))
        .expect("the end of alice's session is audited");
    assert_eq!(ended["reason"], "replaced_by_new_sign_in");
    assert_eq!(ended["actor"], "bob");
    task.abort();
}

/// The (unverified) claims of a JWT.
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
