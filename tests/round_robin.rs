//! Two replicas behind a plain round-robin proxy (SPEC 12: "no sticky
//! sessions, no per-replica state"): consecutive requests land on
//! different replicas (the proxy counts them), and whatever one replica
//! started the other continues: the console journey, the DPoP replay set,
//! the session limit's pending sign-in.
//!
//! The PostgreSQL tests get a fresh database on the harness's throwaway
//! server; without PostgreSQL they print one SKIPPED line and pass, unless
//! TENURE_REQUIRE_EXTERNAL=1.

use serde_json::Value;

use crate::console::{config as console_config, settings_form};
use crate::support::Server;
use crate::support::flow::{Browser, code_from, input_value, location, pkce_pair, set_cookie};
use crate::support::kit::{
    ROOT_AUTOMATION, WEB, WEB_REDIRECT, call, introspect_active, redeem, refresh, root_token, user,
};
use crate::support::round_robin::{RoundRobin, assert_alternated, replicas_behind_proxy};

#[tokio::test]
async fn the_proxy_sends_each_request_to_the_next_replica() {
    let proxy = RoundRobin::bind().await;
    let config = crate::support::config_with("");
    let a = Server::start(&config, &[("TENURE_ISSUER", proxy.base.as_str())]);
    let b = Server::start(&config, &[("TENURE_ISSUER", proxy.base.as_str())]);
    proxy.set_backends(&[&a.base, &b.base]);
    let http = reqwest::Client::new();
    for _ in 0..6 {
        let resp = http.get(proxy.url("/.well-known/openid-configuration")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["issuer"], proxy.base.as_str(), "the issuer is the proxy's address");
    }
    assert_eq!(proxy.counts(), vec![3, 3]);
    assert_alternated(&proxy.take_landed(), 6);
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn post(server: &Server, browser: &Browser, path: &str, pairs: &[(String, String)]) -> reqwest::Response {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post_form(server, path, &refs).await
}

/// GET `path` of `replica` directly with console cookie `cookie`.
async fn console_at(replica: &Server, path: &str, cookie: &str) -> reqwest::Response {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    http.get(replica.url(path)).header("cookie", format!("tenure_console={cookie}")).send().await.unwrap()
}

#[tokio::test]
async fn the_whole_console_journey_goes_through_a_round_robin_balancer() {
    let Some((_db, proxy, a, b)) = replicas_behind_proxy(&console_config(), &[]).await else { return };
    let lb = proxy.server();
    let browser = Browser::new();

    // Sign in: each step of the redirect chain at the other replica.
    let first = browser.get(&lb, "/console/users").await;
    assert_eq!(first.status(), 303, "a signed-out visitor is sent to sign in");
    let authorize = location(&first).unwrap();
    let page = browser.get(&lb, &authorize).await;
    assert_eq!(page.status(), 200, "the sign-in page");
    let page = page.text().await.unwrap();
    let posted = browser.submit_sign_in(&lb, &page, "root", "root-password", false).await;
    assert_eq!(posted.status(), 303, "signed in (the sign-in form's CSRF cookie was set by the other replica)");
    let back = browser.get(&lb, &location(&posted).unwrap()).await;
    assert_eq!(back.status(), 302, "/authorize sends the code to the console's callback");
    let callback = location(&back).unwrap();
    assert!(callback.starts_with(&proxy.url("/console/callback?")), "{callback}");
    let done = browser.http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "the callback, at the other replica than the start, starts the console session");
    assert_eq!(location(&done).as_deref(), Some("/console/users"));
    let cookie = set_cookie(&done, "tenure_console").expect("the console cookie");
    let cookie = cookie.trim_start_matches("tenure_console=").split(';').next().unwrap().to_owned();
    let landed = proxy.take_landed();
    assert_alternated(&landed, 5);
    // A callback the session did not start (a link someone sent) leaves the
    // signed-in session alone.
    let forged = browser.get(&lb, "/console/callback?state=forged&code=forged").await;
    assert_ne!(forged.status(), 303, "no sign-in from a forged callback");
    assert_eq!(browser.get(&lb, "/console/users").await.status(), 200, "still signed in");
    proxy.take_landed();

    // Users: create one (the form at one replica, the post at the other,
    // the notice it leaves shown by the first again).
    let page = browser.get(&lb, "/console/users").await;
    assert_eq!(page.status(), 200);
    let token = input_value(&page.text().await.unwrap(), "csrf").unwrap();
    let created = post(
        &lb,
        &browser,
        "/console/users",
        &form(&[("csrf", &token), ("username", "dave"), ("email", "dave@example.com"), ("password", "dave-password")]),
    )
    .await;
    assert_eq!(created.status(), 303);
    assert_eq!(location(&created).as_deref(), Some("/console/users/dave"));
    let page = browser.get(&lb, "/console/users/dave").await.text().await.unwrap();
    assert!(page.contains("User dave created."), "the notice left at one replica is shown by the other: {page}");
    let page = browser.get(&lb, "/console/users/dave").await.text().await.unwrap();
    assert!(!page.contains("User dave created."), "once");
    assert_alternated(&proxy.take_landed(), 4);

    // A settings change with preview and confirm.
    let token = input_value(&browser.get(&lb, "/console/settings").await.text().await.unwrap(), "csrf").unwrap();
    let pairs = settings_form(&token, &[("idle_custom_minutes", "5"), ("access_token_minutes", "5")]);
    let preview = post(&lb, &browser, "/console/settings", &pairs).await;
    assert_eq!(preview.status(), 200);
    let page = preview.text().await.unwrap();
    assert!(page.contains("Apply to live sessions?"), "{page}");
    let mut confirmed = pairs.clone();
    confirmed.push(("confirmed".into(), "1".into()));
    let saved = post(&lb, &browser, "/console/settings", &confirmed).await;
    assert_eq!(saved.status(), 303);
    let page = browser.get(&lb, "/console/settings").await.text().await.unwrap();
    assert!(page.contains("Session settings saved."), "{page}");
    assert_alternated(&proxy.take_landed(), 4);
    let bearer = root_token(&a).await;
    let (_, settings) = call(&b, "GET", "/admin/settings/session", Some(&bearer), None).await;
    assert_eq!(settings["idle_timeout"], 300, "{settings}");

    // The console session is the same at both replicas...
    assert_eq!(console_at(&a, "/console/users", &cookie).await.status(), 200);
    assert_eq!(console_at(&b, "/console/users", &cookie).await.status(), 200);

    // ... and signing out at one ends it at both.
    let token = input_value(&browser.get(&lb, "/console/account").await.text().await.unwrap(), "csrf").unwrap();
    let out = post(&lb, &browser, "/console/sign-out", &form(&[("csrf", &token)])).await;
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out).as_deref(), Some("/console/signed-out"));
    assert_alternated(&proxy.take_landed(), 2);
    for replica in [&a, &b] {
        let resp = console_at(replica, "/console/users", &cookie).await;
        assert_eq!(resp.status(), 303, "the old cookie is dead at {}", replica.base);
        assert!(location(&resp).unwrap().starts_with("/authorize?"));
    }
}

fn web_config(session: &str) -> String {
    crate::support::config_with(&format!(
        r#"
[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]
{}{ROOT_AUTOMATION}
[session]
{session}
"#,
        user("alice", &[])
    ))
}

/// A signed ES256 DPoP proof for `POST htu`, without nonce.
fn proof(key: &ring::signature::EcdsaKeyPair, htu: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ring::signature::KeyPair;
    let point = key.public_key().as_ref();
    let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]) });
    let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
    let iat = {
        use tenure::clock::Clock;
        tenure::clock::SystemClock.now().as_secs()
    };
    let claims =
        serde_json::json!({ "jti": uuid::Uuid::new_v4().simple().to_string(), "htm": "POST", "htu": htu, "iat": iat });
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let signature = key.sign(&ring::rand::SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature.as_ref()))
}

#[tokio::test]
async fn a_dpop_proof_accepted_at_one_replica_is_refused_at_the_other() {
    let env = [("TENURE_DPOP_NONCE", "off")];
    let Some((_db, proxy, _a, _b)) = replicas_behind_proxy(&crate::support::config_with(""), &env).await else {
        return;
    };
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let htu = proxy.url("/token");
    let http = reqwest::Client::new();
    let token_request = |dpop: String| {
        http.post(proxy.url("/token"))
            .basic_auth("orders-api", Some("orders-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", dpop)
            .body("grant_type=client_credentials")
            .send()
    };
    let used = proof(&key, &htu);
    let first = token_request(used.clone()).await.unwrap();
    assert_eq!(first.status(), 200, "accepted at A");
    let replayed = token_request(used).await.unwrap();
    assert_eq!(replayed.status(), 400, "replayed at B");
    let body: Value = replayed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    assert_eq!(proxy.take_landed(), vec![0, 1], "the first at A, the replay at B");

    // Sixteen copies of one fresh proof at once, spread over both
    // replicas: exactly one is accepted.
    let racing = proof(&key, &htu);
    let all = futures_join_all((0..16).map(|_| token_request(racing.clone()))).await;
    let accepted = all.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200)).count();
    assert_eq!(accepted, 1, "of 16 racing copies across both replicas one is accepted");
    assert_eq!(proxy.counts(), vec![8, 8]);
}

/// Await every future (the test binary has no `futures` crate).
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_pending_sign_in_at_the_session_limit_started_at_one_replica_is_completed_at_the_other() {
    let config = web_config("max_sessions = 1\non_session_limit = \"ask\"");
    let Some((_db, proxy, _a, _b)) = replicas_behind_proxy(&config, &[]).await else { return };
    let lb = proxy.server();
    let first = crate::support::kit::sign_in(&lb, "alice", "alice-password", "openid").await;
    let browser = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", WEB_REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    proxy.take_landed();
    let page = browser.authorize(&lb, &query).await.text().await.unwrap();
    let at_limit = browser.submit_sign_in(&lb, &page, "alice", "alice-password", false).await;
    assert_eq!(at_limit.status(), 200);
    let html = at_limit.text().await.unwrap();
    assert!(html.contains("Too many sessions"), "{html}");
    let csrf = input_value(&html, "csrf_token").unwrap();
    let pending = input_value(&html, "pending").unwrap();
    let landed = proxy.take_landed();
    let started_at = *landed.last().unwrap();

    let chosen = browser
        .post_form(
            &lb,
            "/login/session-limit",
            &[("csrf_token", &csrf), ("pending", &pending), ("action", "end"), ("end", &first.sid())],
        )
        .await;
    assert_eq!(chosen.status(), 303, "completed at the other replica: {}", chosen.text().await.unwrap_or_default());
    let completed_at = proxy.take_landed();
    assert_eq!(completed_at.len(), 1);
    assert_ne!(completed_at[0], started_at, "the pending sign-in was completed at the other replica");
    let next = location(&chosen).unwrap();
    let code = code_from(browser.get(&lb, &next).await).await;
    let tokens = redeem(&lb, WEB, &code, WEB_REDIRECT, Some(&verifier)).await;
    assert!(!introspect_active(&lb, &first.access()).await, "the chosen session ended");
    assert_eq!(refresh(&lb, WEB, &tokens.refresh()).await.status(), 200);

    // Used once: the same choice again, at either replica, is spent.
    for _ in 0..2 {
        let again = browser
            .post_form(
                &lb,
                "/login/session-limit",
                &[("csrf_token", &csrf), ("pending", &pending), ("action", "end"), ("end", &first.sid())],
            )
            .await;
        assert_ne!(again.status(), 303, "a used pending sign-in is spent");
    }
    assert_alternated(&proxy.take_landed(), 2);
}

/// What two replicas do when they serve one console session at once, at
/// half the access token's life: one claims the refresh (compare-and-swap
/// on the stored session), the others go on with the access token; the
/// refresh token is never used twice (which would be a reuse and end the
/// session). Eight requests at once on one in-process server on a manual
/// clock take the same path through the store as eight at eight replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_console_requests_at_half_life_refresh_once_and_stay_signed_in() {
    let env = [("TENURE_SESSION_IDLE_TIMEOUT", "1h"), ("TENURE_SESSION_ACCESS_TOKEN_TTL", "4s")];
    let server = crate::support::manual::ManualServer::start(&console_config(), &env).await;
    let browser = Browser::new();
    crate::console::sign_in(&server, &browser, "/console/account", "root", "root-password").await;
    for round in 0..3 {
        server.advance(3);
        let all = futures_join_all((0..8).map(|_| {
            let (http, url) = (browser.http.clone(), server.url("/console/account"));
            async move { http.get(url).send().await.unwrap().status().as_u16() }
        }))
        .await;
        assert_eq!(all, vec![200; 8], "round {round}: every request is served, none signed out");
    }
    // The console's family was never killed as a reuse.
    let bearer = root_token(&server).await;
    let (_, listed) = call(&server, "GET", "/admin/users/root/sessions", Some(&bearer), None).await;
    assert_eq!(listed["sessions"][0]["client_ids"], serde_json::json!(["console"]), "{listed}");
    let audit = call(&server, "GET", "/admin/audit?limit=200", Some(&bearer), None).await.1.to_string();
    assert!(!audit.contains("refresh_token_reuse"), "no reuse: {audit}");
}

/// The console in Chromium through the balancer: every page, script and
/// stylesheet request goes to the next replica, and the administrator
/// signs in, opens Users and creates one as usual. A screenshot goes to
/// `$TENURE_SCREENSHOT_DIR` when set.
#[tokio::test]
async fn the_console_works_in_chromium_through_the_round_robin_balancer() {
    let Some(browser) = crate::support::browser::Chromium::start().await else { return };
    let Some((_db, proxy, _a, _b)) = replicas_behind_proxy(&console_config(), &[]).await else { return };
    let lb = proxy.server();
    browser.goto(&lb.url("/console/users")).await;
    browser.wait_for("input[name=username]").await;
    browser.fill("input[name=username]", "root").await;
    browser.fill("input[name=password]", "root-password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("main#main").await;
    assert_eq!(browser.url().await.path(), "/console/users");
    browser.fill("input[name=username]", "erin").await;
    browser.fill("input[name=email]", "erin@example.com").await;
    browser.fill("input[name=password]", "erin-password").await;
    browser.execute("document.querySelector('input[name=username]').form.requestSubmit()", vec![]).await;
    let created = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        browser.text("main#main").await.contains("User erin created.")
    })
    .await;
    assert!(created, "the notice of the created user: {}", browser.text("main#main").await);
    assert_eq!(browser.url().await.path(), "/console/users/erin");
    let counts = proxy.counts();
    assert!(counts.iter().all(|&n| n >= 4), "both replicas served the browser: {counts:?}");
    assert_alternated(&proxy.take_landed(), 8);
    if let Ok(dir) = std::env::var("TENURE_SCREENSHOT_DIR") {
        let png = browser.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("console-through-round-robin.png"), png).unwrap();
    }
    browser.close().await;
}
