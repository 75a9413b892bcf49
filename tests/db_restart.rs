//! The database restarts under load (SPEC 12, "The database may restart or
//! fail over"): two replicas on a PostgreSQL server of the test's own
//! ([`RestartablePg`]), refresh chains running through both behind a
//! round-robin proxy; the server is stopped for a few seconds
//! (`pg_ctl stop -m fast`, as a restart ends its sessions) and started
//! again on the same data directory and port.
//!
//! What must hold: while it is down every refresh is answered `503` with
//! `Retry-After`, quickly (never a `500`, never a hang); `/readyz` says
//! `503` and then `200`; a client-credentials token is still issued and
//! JWKS still answers (both are served from memory); afterwards every chain
//! continues from its last acknowledged token, no token ever has two
//! successes (no fork), and each replica serves normally within 5 s of the
//! database answering, without a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::browser::Chromium;
use crate::support::flow::Browser;
use crate::support::kit::{cc_admin_token, user};
use crate::support::postgres::RestartablePg;
use crate::support::round_robin::RoundRobin;
use crate::support::{Server, verify};

const REDIRECT: &str = "https://app.example/cb";
const CHAINS: usize = 8;
/// How long the database stays down.
const DOWN_FOR: Duration = Duration::from_secs(4);
/// SPEC 12: every replica serves normally within this time of the database
/// answering again.
const RECOVERY: Duration = Duration::from_secs(5);
/// No request may wait longer than this while the database is away (the
/// pool's 2 s wait and 2 s connect timeout, with room for a busy machine).
const NO_HANG: Duration = Duration::from_secs(8);

fn config() -> String {
    crate::support::config_with(&format!(
        r#"[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["{REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]

{}"#,
        user("alice", &[])
    ))
}

/// One refresh attempt as a chain saw it.
#[derive(Debug)]
struct Attempt {
    chain: usize,
    /// When it was sent, from the start of the test.
    sent: Duration,
    took: Duration,
    status: u16,
    retry_after: bool,
    /// The token presented.
    presented: String,
    body: String,
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str) -> (u16, bool, Value, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("grant_type", "refresh_token"), ("refresh_token", token)])
        .finish();
    let resp = http
        .post(format!("{base}/token"))
        .basic_auth("web", Some("web-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the proxy answers");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").is_some();
    let text = resp.text().await.unwrap_or_default();
    (status, retry_after, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

async fn first_tokens(server: &Server) -> String {
    let code = Browser::new()
        .sign_in_for_code(
            server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let resp = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["refresh_token"].as_str().expect("refresh_token").to_owned()
}

async fn readyz(server: &Server) -> (u16, bool, Value) {
    let resp = server.http.get(server.url("/readyz")).send().await.expect("readyz");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").is_some();
    (status, retry_after, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn refresh_chains_survive_a_database_restart_with_only_503s_meanwhile() {
    let Some(pg) = RestartablePg::start() else { return };
    let url = pg.database().await;
    crate::support::postgres::migrate(&url);

    let proxy = RoundRobin::bind().await;
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", url.as_str()), ("TENURE_ISSUER", &proxy.base)];
    let a = Server::start(&config(), &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config(), &[env[0], env[1], env[2], ("TENURE_KEYS_DIR", keys.as_str())]);
    proxy.set_backends(&[&a.base, &b.base]);
    let replicas = [&a, &b];

    let mut tokens = Vec::new();
    for i in 0..CHAINS {
        tokens.push(first_tokens(replicas[i % 2]).await);
    }

    // The chains: each refreshes its last acknowledged token through the
    // proxy until told to stop; a 503 leaves the token as it was.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Arc<Mutex<Vec<Attempt>>> = Arc::default();
    let mut running = Vec::new();
    for (chain, first) in tokens.into_iter().enumerate() {
        let (stop, attempts, base) = (stop.clone(), attempts.clone(), proxy.base.clone());
        running.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut current = first;
            while !stop.load(Ordering::Relaxed) {
                let sent = start.elapsed();
                let began = Instant::now();
                let (status, retry_after, body, text) = refresh(&http, &base, &current).await;
                let took = began.elapsed();
                let presented = current.clone();
                if status == 200 {
                    current = body["refresh_token"].as_str().unwrap_or_default().to_owned();
                }
                attempts.lock().unwrap().push(Attempt {
                    chain,
                    sent,
                    took,
                    status,
                    retry_after,
                    presented,
                    body: text,
                });
                if status != 200 {
                    // Against a real outage there is no clock to move.
                    // sleep: pacing the retries of a chain during the outage
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            current
        }));
    }
    // Under load before the outage.
    crate::support::eventually(Duration::from_secs(20), || async {
        attempts.lock().unwrap().iter().filter(|a| a.status == 200).count() >= CHAINS * 4
    })
    .await;

    // For the answers of the other kinds of endpoint during the outage.
    let (browser, query) = (
        Browser::new(),
        [("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")],
    );
    let code = browser.sign_in_for_code(&a, &query, "alice", "alice-password", false).await;
    let alice: Value = a
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)],
        )
        .await
        .json()
        .await
        .expect("json");
    let alice = alice["access_token"].as_str().expect("access_token").to_owned();
    let automation = cc_admin_token(&a, "automation", "automation-secret").await;

    let stopping = start.elapsed();
    pg.stop();
    let stopped = start.elapsed();

    // While it is down: readiness says so, naming the database; client
    // credentials and JWKS go on, and the token verifies with the JWKS.
    for server in replicas {
        let (status, retry_after, body) = readyz(server).await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after, "/readyz 503 carries Retry-After");
        assert_eq!(body["store"], "postgres", "{body}");
        assert!(body["message"].as_str().unwrap_or_default().contains("does not answer"), "{body}");
        let began = Instant::now();
        let cc = server
            .post_form("/token", Some(("orders-api", "orders-secret")), &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(cc.status(), 200, "client credentials go on while the database is down");
        assert!(began.elapsed() < NO_HANG);
        let cc: Value = cc.json().await.expect("json");
        let jwks = server.jwks().await;
        verify(cc["access_token"].as_str().expect("access_token"), &jwks, &proxy.base, &proxy.base);
    }
    outage_answers(&a, &alice, &automation).await;
    // sleep: the database stays down for a few seconds while the chains run
    tokio::time::sleep(DOWN_FOR).await;

    let restarting = start.elapsed();
    pg.start_again();
    let up = Instant::now();
    let up_at = start.elapsed();

    // Every replica serves normally within 5 s: ready, and a fresh chain's
    // refresh succeeds at each of them directly.
    let mut recovered = [None, None];
    while recovered.iter().any(Option::is_none) && up.elapsed() < Duration::from_secs(30) {
        for (i, server) in replicas.iter().enumerate() {
            if recovered[i].is_none() && readyz(server).await.0 == 200 {
                let http = reqwest::Client::new();
                let token = first_tokens(server).await;
                let (status, _, body, _) = refresh(&http, &server.base, &token).await;
                assert_eq!(status, 200, "{body}");
                recovered[i] = Some(up.elapsed());
            }
        }
        // sleep: polling a real server's recovery from a real restart
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, took) in recovered.iter().enumerate() {
        let took = took.unwrap_or_else(|| panic!("replica {i} did not recover within 30 s"));
        assert!(took < RECOVERY, "replica {i} served normally only {took:?} after the database answered");
    }
    // The LISTEN connections (settings and clients, signing keys) of both
    // replicas are back within their 5 s retry.
    let listening = crate::support::eventually(Duration::from_secs(10), || async {
        let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
            return false;
        };
        tokio::spawn(connection);
        let count = |sql: &'static str| {
            let client = &client;
            async move { client.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(0) }
        };
        count("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tenure_cache'").await >= 2
            && count("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tenure_keys'").await >= 2
    })
    .await;
    assert!(listening, "both replicas LISTEN again after the restart");
    // And the chains run on for a while.
    let chains_again = start.elapsed();
    crate::support::eventually(Duration::from_secs(20), || async {
        let attempts = attempts.lock().unwrap();
        (0..CHAINS).all(|c| attempts.iter().any(|a| a.chain == c && a.status == 200 && a.sent > chains_again))
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut last = Vec::new();
    for task in running {
        last.push(task.await.expect("a chain"));
    }

    let attempts = std::mem::take(&mut *attempts.lock().unwrap());
    let mut successes: HashMap<&str, usize> = HashMap::new();
    for a in attempts.iter() {
        assert!(
            a.status == 200 || (a.status == 503 && a.retry_after),
            "only 200, or 503 with Retry-After while the database was away: {a:?}"
        );
        assert!(a.took < NO_HANG, "a request waited {:?}: {a:?}", a.took);
        if a.status == 503 {
            // Sent while the database was (being) stopped, or before every
            // replica had noticed it was back.
            assert!(
                a.sent + a.took >= stopping && a.sent <= up_at + RECOVERY,
                "a 503 outside the outage ({stopping:?}..{:?}): {a:?}",
                up_at + RECOVERY
            );
        }
        if a.status == 200 {
            *successes.entry(a.presented.as_str()).or_default() += 1;
        }
    }
    eprintln!(
        "db_restart: {} attempts, {} answered 503; down {stopping:?}..{up_at:?}; recovered after {recovered:?}; \
         proxy counts {:?}",
        attempts.len(),
        attempts.iter().filter(|a| a.status == 503).count(),
        proxy.counts()
    );
    let forks: Vec<_> = successes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(forks.is_empty(), "a token refreshed twice (a fork): {} of them", forks.len());
    let unavailable = attempts.iter().filter(|a| a.status == 503).count();
    assert!(unavailable > 0, "the chains met the outage (stopped at {stopped:?}, restarted at {restarting:?})");
    for c in 0..CHAINS {
        let after = attempts.iter().filter(|a| a.chain == c && a.status == 200 && a.sent > up_at).count();
        assert!(after > 0, "chain {c} continued after the restart");
    }
    // Each chain's last token still works: nothing acknowledged was lost.
    let http = reqwest::Client::new();
    for token in &last {
        let (status, _, body, _) = refresh(&http, &proxy.base, token).await;
        assert_eq!(status, 200, "the last acknowledged token refreshes: {body}");
    }
    let counts = proxy.counts();
    assert!(counts.iter().all(|n| *n > CHAINS), "both replicas served the chains: {counts:?}");
    let bodies: Vec<&str> =
        attempts.iter().filter(|a| a.status == 503).take(1).map(|a| a.body.as_str()).collect::<Vec<_>>();
    let body: Value = serde_json::from_str(bodies[0]).expect("a JSON 503 body");
    assert_eq!(body["error"], "temporarily_unavailable", "RFC 6749 5.2 shape: {body}");
    assert!(body["error_description"].is_string(), "{body}");
}

/// While the database is down, each kind of endpoint answers 503 with
/// `Retry-After` in its own shape: OAuth (RFC 6749 5.2), a resource
/// endpoint, the admin API (`{"error","message"}`), the sign-in page (HTML);
/// discovery and JWKS answer as usual.
async fn outage_answers(server: &Server, access: &str, admin: &str) {
    let check = |what: &str, resp: &reqwest::Response| {
        assert_eq!(resp.status(), 503, "{what}");
        assert!(resp.headers().get("retry-after").is_some(), "{what}: Retry-After");
    };
    let resp = server.post_form("/introspect", Some(("web", "web-secret")), &[("token", access)]).await;
    check("/introspect", &resp);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].is_string(), "{body}");

    let resp = server.http.get(server.url("/userinfo")).bearer_auth(access).send().await.expect("userinfo");
    check("/userinfo", &resp);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "temporarily_unavailable");

    let resp = server.http.get(server.url("/admin/users")).bearer_auth(admin).send().await.expect("admin");
    check("/admin/users", &resp);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("database does not answer"), "{body}");

    let browser = Browser::new();
    let page = browser
        .authorize(
            server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")],
        )
        .await;
    assert_eq!(page.status(), 200, "the sign-in page itself needs no database");
    let page = page.text().await.expect("page");
    let resp = browser.submit_sign_in(server, &page, "alice", "alice-password", false).await;
    check("POST /login", &resp);
    let html = resp.text().await.expect("html");
    assert!(html.contains("try again in a few seconds"), "a readable page: {html}");

    for path in ["/.well-known/openid-configuration", "/jwks.json"] {
        let resp = server.http.get(server.url(path)).send().await.expect(path);
        assert_eq!(resp.status(), 200, "{path} is served from memory");
    }
}

/// The console during an outage, in Chromium: a page that needs the
/// database says so in words and keeps the console session, which serves
/// again within 5 s of the database answering, without asking for the
/// password.
#[tokio::test]
async fn the_console_says_the_database_does_not_answer_and_recovers() {
    let Some(pg) = RestartablePg::start() else { return };
    let Some(browser) = Chromium::start().await else { return };
    let url = pg.database().await;
    crate::support::postgres::migrate(&url);
    let server =
        Server::start(&crate::console::config(), &[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", &url)]);
    browser.goto(&server.url("/console/users")).await;
    browser.wait_for("input[name=username]").await;
    browser.fill("input[name=username]", "root").await;
    browser.fill("input[name=password]", "root-password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("main#main").await;
    assert!(browser.text("main").await.contains("alice"), "the users page lists alice");

    pg.stop();
    browser.goto(&server.url("/console/users")).await;
    // The console's own outage page: the session is kept, not signed out.
    let said = crate::support::eventually(Duration::from_secs(10), || async {
        let text = browser.text("body").await;
        text.contains("You are still signed in: try again in a few seconds")
    })
    .await;
    assert!(said, "a readable page: {}", browser.text("body").await);
    let status = server.http.get(server.url("/readyz")).send().await.expect("readyz").status();
    assert_eq!(status, 503);

    pg.start_again();
    let back = crate::support::eventually(RECOVERY, || async {
        browser.goto(&server.url("/console/users")).await;
        browser.text("main").await.contains("alice")
    })
    .await;
    assert!(back, "the console serves again within 5 s of the database answering (no password asked)");
    browser.close().await;
}

/// The database's host goes silent (every PostgreSQL process frozen: the
/// connections stay open, nothing answers, as in a failover that does not
/// close them): requests still end within the bounds (15 s for work already
/// on a connection, then at once or within the 2 s connect bound), as a 503
/// with `Retry-After`; client credentials go on; and once it answers again,
/// the replica serves within 5 s.
#[tokio::test]
async fn a_silent_database_is_a_bounded_wait_and_a_503() {
    let Some(pg) = RestartablePg::start() else { return };
    let url = pg.database().await;
    crate::support::postgres::migrate(&url);
    let server = Server::start(&config(), &[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", &url)]);
    let http = reqwest::Client::new();
    let mut token = first_tokens(&server).await;
    let (status, _, body, _) = refresh(&http, &server.base, &token).await;
    assert_eq!(status, 200, "{body}");
    token = body["refresh_token"].as_str().expect("refresh_token").to_owned();

    pg.freeze();
    // A wrong client secret first: it reads the shared attempt counts on a
    // pooled connection that no longer answers. That read is bounded too
    // (it once waited for TCP to give up), and a failed read costs the
    // shared count, not the answer.
    let began = Instant::now();
    let wrong = tokio::time::timeout(
        Duration::from_secs(40),
        server.post_form("/token", Some(("orders-api", "not-the-secret")), &[("grant_type", "client_credentials")]),
    )
    .await
    .expect("a wrong secret is answered while the database is silent");
    assert!(matches!(wrong.status().as_u16(), 401 | 503), "{}", wrong.status());
    assert!(began.elapsed() < Duration::from_secs(25), "the wrong secret took {:?}", began.elapsed());
    // The first requests meet pooled connections that no longer answer
    // (up to the 15 s bound); the ones after find none and fail quickly.
    for (i, bound) in [Duration::from_secs(20), Duration::from_secs(6), Duration::from_secs(6)].into_iter().enumerate()
    {
        let began = Instant::now();
        let (status, retry_after, body, _) = refresh(&http, &server.base, &token).await;
        let took = began.elapsed();
        assert_eq!((status, retry_after), (503, true), "request {i}: {body}");
        assert!(took < bound, "request {i} took {took:?}");
    }
    let began = Instant::now();
    assert_eq!(readyz(&server).await.0, 503);
    assert!(began.elapsed() < Duration::from_secs(6), "/readyz took {:?}", began.elapsed());
    let began = Instant::now();
    let cc = server
        .post_form("/token", Some(("orders-api", "orders-secret")), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(cc.status(), 200, "client credentials go on");
    assert!(began.elapsed() < Duration::from_secs(6), "client credentials took {:?}", began.elapsed());

    pg.thaw();
    let up = Instant::now();
    let back = crate::support::eventually(Duration::from_secs(30), || async {
        refresh(&http, &server.base, &token).await.0 == 200
    })
    .await;
    assert!(back, "the replica serves again once the database answers");
    assert!(up.elapsed() < RECOVERY + Duration::from_secs(1), "served again after {:?}", up.elapsed());
}
