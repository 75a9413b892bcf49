//! Sessions with two clocks end to end (SPEC 3, 5): the code + PKCE flow for
//! public and confidential clients, ID tokens checked by an independent
//! library, rotation, reuse detection, forged tokens, concurrency, the grace
//! window, CORS, and crash safety (SIGKILL, restart, state intact).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::support::flow::{Browser, pkce_pair};
use crate::support::kit::{
    WEB, WEB_REDIRECT, code_without_pkce, refresh, sign_in_without_pkce, spa_client, web_client,
};
use crate::support::{Server, config_with};

const SPA_REDIRECT: &str = "http://127.0.0.1:9001/";

fn config(extra: &str) -> String {
    config_with(&format!(
        r#"{}{}session = {{ max_lifetime = "1h" }}

[[clients]]
id = "no-refresh"
secret = "nr-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code"]

[[users]]
username = "alice"
password = "alice-password"
email = "alice@example.com"
name = "Alice Liddell"

{extra}
"#,
        web_client(&["openid", "profile", "email"]),
        spa_client(SPA_REDIRECT, "http://127.0.0.1:9001")
    ))
}

/// Sign in at the public SPA with PKCE and redeem the code.
async fn spa_tokens(server: &Server) -> serde_json::Value {
    let browser = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let code = browser
        .sign_in_for_code(
            server,
            &[
                ("response_type", "code"),
                ("client_id", "spa"),
                ("redirect_uri", SPA_REDIRECT),
                ("scope", "openid profile"),
                ("state", "s1"),
                ("nonce", "n-0S6_WzA2Mj"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let resp = server
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", &code),
                ("redirect_uri", SPA_REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Sign in at the confidential web client and redeem the code.
async fn web_tokens(server: &Server, remember_me: bool) -> serde_json::Value {
    sign_in_without_pkce(server, WEB, "alice", "alice-password", "openid email", remember_me).await.body
}

async fn refresh_ok(server: &Server, token: &str) -> serde_json::Value {
    let resp = refresh(server, ("web", "web-secret"), token).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn expect_invalid_grant(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

async fn userinfo(server: &Server, access_token: &str) -> reqwest::Response {
    server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await.unwrap()
}

fn rt(body: &serde_json::Value) -> String {
    body["refresh_token"].as_str().expect("a refresh token").to_owned()
}

#[tokio::test]
async fn a_public_client_completes_code_and_pkce_and_gets_a_verifiable_id_token() {
    let server = Server::start(&config(""), &[]);
    let body = spa_tokens(&server).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile");
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43, "at least 256 bits");
    // The SPA's override caps its session at 1 h: the refresh token and the
    // session both die within the hour, and the access token before them.
    assert_eq!(body["session_expires_in"], 3600);
    assert_eq!(body["refresh_expires_in"], 1800, "the idle deadline comes first");
    assert_eq!(body["expires_in"], 1800);

    let id_token = body["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwks = server.jwks().await;
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["spa"]);
    validation.set_issuer(&[server.base.as_str()]);
    let id = jsonwebtoken::decode::<serde_json::Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the ID token verifies")
        .claims;
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj", "nonce echoed exactly");
    assert_eq!(id["azp"], "spa");
    assert!(id["auth_time"].as_u64().unwrap() <= id["iat"].as_u64().unwrap());
    let access_token = body["access_token"].as_str().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    assert_eq!(id["at_hash"], B64.encode(&digest.as_ref()[..16]), "OIDC Core 3.1.3.6");

    let at = crate::support::verify(access_token, &jwks, &server.base, &server.base).claims;
    assert_eq!(at["sid"], id["sid"], "the access token carries the session");
    assert_eq!(at["client_id"], "spa");

    let info: serde_json::Value = userinfo(&server, access_token).await.json().await.unwrap();
    assert_eq!(info, serde_json::json!({"sub": "alice", "preferred_username": "alice", "name": "Alice Liddell"}));
}

#[tokio::test]
async fn a_confidential_client_gets_tokens_and_userinfo_by_scope() {
    let server = Server::start(&config(""), &[]);
    let body = web_tokens(&server, false).await;
    // Counted from the sign-in, a second or two before the code exchange
    // on a loaded machine.
    let session_left = body["session_expires_in"].as_u64().unwrap();
    assert!((43200 - 3..=43200).contains(&session_left), "12 h absolute: {session_left}");
    let info: serde_json::Value = userinfo(&server, body["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(info, serde_json::json!({"sub": "alice", "email": "alice@example.com"}));

    let remembered = web_tokens(&server, true).await;
    let session_left = remembered["session_expires_in"].as_u64().unwrap();
    assert!((20 * 86400 - 3..=20 * 86400).contains(&session_left), "remember me: 20 d: {session_left}");
    assert_eq!(remembered["refresh_expires_in"], 7 * 86400, "remember me: 7 d idle");
    assert_eq!(remembered["expires_in"], 1800, "the access token stays short");
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_kills_the_family() {
    let server = Server::start(&config(""), &[]);
    let first = web_tokens(&server, false).await;
    let rt1 = rt(&first);
    let second = refresh_ok(&server, &rt1).await;
    let rt2 = rt(&second);
    assert_ne!(rt1, rt2, "every use rotates");
    let id = second["id_token"].as_str().expect("a new ID token on refresh");
    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(id.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(claims.get("nonce").is_none(), "no nonce on refresh (OIDC Core 12.2)");
    let third = refresh_ok(&server, &rt2).await;
    let rt3 = rt(&third);
    assert_eq!(userinfo(&server, third["access_token"].as_str().unwrap()).await.status(), 200);

    // Replay of a spent token: refused, and the whole family dies.
    let why = expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt1).await).await;
    assert!(why.contains("already used"), "{why}");
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt3).await).await;
    let resp = userinfo(&server, third["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 401, "access tokens of the family die with it");
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn a_forged_or_foreign_refresh_token_kills_nothing() {
    let server = Server::start(&config(""), &[]);
    let body = web_tokens(&server, false).await;
    let real = rt(&body);
    // Same family and generation, wrong MAC.
    let raw = B64.decode(real.strip_prefix("rt1.").unwrap()).unwrap();
    let mut forged = raw.clone();
    forged[40] ^= 1;
    let forged = format!("rt1.{}", B64.encode(forged));
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &forged).await).await;
    // An older generation with a forged MAC must not trigger reuse detection either.
    let mut older = raw.clone();
    older[23] = 0;
    let older = format!("rt1.{}", B64.encode(older));
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &older).await).await;
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), "not-a-token").await).await;
    // Another client presenting a genuine token is refused, and kills nothing.
    let foreign = server
        .post_form("/token", None, &[("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", &real)])
        .await;
    let why = expect_invalid_grant(foreign).await;
    assert!(why.contains("another client"), "{why}");
    // The real token still works.
    refresh_ok(&server, &real).await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_created() {
    let server = Server::start(&config(""), &[]);
    let code = code_without_pkce(&server, "web", "alice", "alice-password", "openid", false).await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", WEB_REDIRECT)];
    let exchange = || server.post_form("/token", Some(("web", "web-secret")), &form);
    let first: serde_json::Value = exchange().await.json().await.unwrap();
    let why = expect_invalid_grant(exchange().await).await;
    assert!(why.contains("already been used"), "{why}");
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt(&first)).await).await;
    assert_eq!(userinfo(&server, first["access_token"].as_str().unwrap()).await.status(), 401);
}

#[tokio::test]
async fn pkce_is_enforced_at_the_token_endpoint() {
    let server = Server::start(&config(""), &[]);
    let browser = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = browser.sign_in_for_code(&server, &query, "alice", "alice-password", false).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_REDIRECT),
    ];
    let missing = server.post_form("/token", None, &base).await;
    assert_eq!(missing.status(), 400);
    let (other_verifier, _) = pkce_pair();
    let mut wrong = base.to_vec();
    wrong.push(("code_verifier", &other_verifier));
    let why = expect_invalid_grant(server.post_form("/token", None, &wrong).await).await;
    assert!(why.contains("does not match"), "{why}");
    let mut right = base.to_vec();
    right.push(("code_verifier", &verifier));
    assert_eq!(server.post_form("/token", None, &right).await.status(), 200);

    // A verifier without a challenge is a downgrade attempt.
    let code = Browser::new()
        .sign_in_for_code(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT)],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let why = expect_invalid_grant(
        server
            .post_form(
                "/token",
                Some(("web", "web-secret")),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", WEB_REDIRECT),
                    ("code_verifier", &verifier),
                ],
            )
            .await,
    )
    .await;
    assert!(why.contains("no code_challenge"), "{why}");
}

async fn concurrent_refreshes(server: &Server, token: &str) -> Vec<(u16, serde_json::Value)> {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = server.http.clone();
        let url = server.url("/token");
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .basic_auth("web", Some("web-secret"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_refreshes_at_most_one_succeeds_without_grace() {
    let server = Server::start(&config(""), &[]);
    let token = rt(&web_tokens(&server, false).await);
    let results = concurrent_refreshes(&server, &token).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    assert!(ok <= 1, "{ok} succeeded");
    assert!(results.iter().all(|(s, b)| *s == 200 || b["error"] == "invalid_grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_grace_window_concurrent_and_retried_refreshes_get_the_same_successor() {
    let server = Server::start(&config(""), &[("TENURE_SESSION_REFRESH_REUSE_GRACE", "30s")]);
    let token = rt(&web_tokens(&server, false).await);
    let results = concurrent_refreshes(&server, &token).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    let successors: std::collections::HashSet<String> = results.iter().map(|(_, b)| rt(b)).collect();
    assert_eq!(successors.len(), 1, "one successor, never a fork");
    let successor = successors.into_iter().next().unwrap();
    // A retry later within the window: the same successor again, and it still works.
    let retry = refresh_ok(&server, &token).await;
    assert_eq!(rt(&retry), successor);
    assert_eq!(userinfo(&server, retry["access_token"].as_str().unwrap()).await.status(), 200);
    let next = refresh_ok(&server, &successor).await;
    // Two generations back is outside the grace: reuse, the family dies.
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &token).await).await;
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt(&next)).await).await;
}

#[tokio::test]
async fn clients_without_the_refresh_grant_get_no_refresh_token() {
    let server = Server::start(&config(""), &[]);
    let code = Browser::new()
        .sign_in_for_code(
            &server,
            // redirect_uri omitted: the client has exactly one.
            &[("response_type", "code"), ("client_id", "no-refresh")],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let body: serde_json::Value = server
        .post_form(
            "/token",
            Some(("no-refresh", "nr-secret")),
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("refresh_expires_in").is_none(), "{body}");
    assert!(body.get("access_token").is_some());
}

#[tokio::test]
async fn redirect_uri_must_be_repeated_when_the_authorization_request_named_it() {
    let server = Server::start(&config(""), &[]);
    let code = Browser::new()
        .sign_in_for_code(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT)],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let missing = server
        .post_form("/token", Some(("web", "web-secret")), &[("grant_type", "authorization_code"), ("code", &code)])
        .await;
    assert_eq!(missing.status(), 400);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("RFC 6749 4.1.3"), "{body}");
    let other = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:9000/other")],
        )
        .await;
    expect_invalid_grant(other).await;
    // Refusals did not consume the code.
    let ok = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_REDIRECT)],
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn cors_answers_the_public_clients_origins_and_nothing_else() {
    let server = Server::start(&config(""), &[]);
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("http://127.0.0.1:9001").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://127.0.0.1:9001");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let post = server
        .http
        .post(server.url("/token"))
        .header("origin", "http://127.0.0.1:9001")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.headers()["access-control-allow-origin"], "http://127.0.0.1:9001");
    // /userinfo and discovery: tests/cors.rs.
}

#[tokio::test]
async fn sigkill_right_after_a_rotation_loses_nothing() {
    let server = Server::start(&config(""), &[]);
    let rt1 = rt(&web_tokens(&server, false).await);
    let rt2 = rt(&refresh_ok(&server, &rt1).await);
    let config_text = std::fs::read_to_string(server.path().join("tenure.toml")).unwrap();
    let dir = server.kill_keep_dir();
    let server = Server::start_in(dir, &config_text, &[]);
    // The rotation survived: rt2 is current (were it lost, rt2 would be unknown).
    let rt3 = rt(&refresh_ok(&server, &rt2).await);
    // And rt1 is still known as spent: its replay kills the family.
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt1).await).await;
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt3).await).await;
}

#[tokio::test]
async fn sigkill_right_after_a_code_exchange_loses_nothing() {
    let server = Server::start(&config(""), &[]);
    let browser = Browser::new();
    let code = browser
        .sign_in_for_code(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT)],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", WEB_REDIRECT)];
    let body: serde_json::Value =
        server.post_form("/token", Some(("web", "web-secret")), &form).await.json().await.unwrap();
    let config_text = std::fs::read_to_string(server.path().join("tenure.toml")).unwrap();
    let dir = server.kill_keep_dir();
    let server = Server::start_in(dir, &config_text, &[]);
    let next = refresh_ok(&server, &rt(&body)).await;
    // The code stays spent across the restart; its replay revokes the family.
    let replay = server.post_form("/token", Some(("web", "web-secret")), &form).await;
    expect_invalid_grant(replay).await;
    expect_invalid_grant(refresh(&server, ("web", "web-secret"), &rt(&next)).await).await;
}

#[tokio::test]
async fn userinfo_refuses_missing_and_bad_tokens_with_bearer_challenges() {
    let server = Server::start(&config(""), &[]);
    let none = server.http.get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"tenure\"");
    let bad = userinfo(&server, "not.a.jwt").await;
    assert_eq!(bad.status(), 401);
    assert!(bad.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    // A client-credentials token has no user.
    let cc = server.cc_token().await;
    assert!(matches!(userinfo(&server, &cc).await.status().as_u16(), 401 | 403));
    // POST with the token in the body (RFC 6750 2.2).
    let body = web_tokens(&server, false).await;
    let resp = server
        .http
        .post(server.url("/userinfo"))
        .form(&[("access_token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_authorization_request_may_be_posted_as_a_form() {
    let server = Server::start(&config(""), &[]);
    let browser = Browser::new();
    // Sign in first (GET), then a second request by POST uses the session.
    browser
        .sign_in_for_code(
            &server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT)],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let resp = browser
        .http
        .post(server.url("/authorize"))
        .form(&[("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT), ("state", "p")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(WEB_REDIRECT) && location.contains("code=") && location.contains("state=p"),
        "{location}"
    );
}
