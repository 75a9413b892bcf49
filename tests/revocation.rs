//! Revocation seen at once (RFC 7009, RFC 7662; SPEC 3, 4, 5), and session
//! settings changed through the admin API applying to live sessions.

use std::time::Duration;

use crate::support::kit::{
    OPS, WEB, WEB_REDIRECT, call, cc_token, refresh, sign_in_without_pkce, spa_client, user, web_client,
};
use crate::support::{Server, config_with, eventually};

fn config() -> String {
    config_with(&format!(
        r#"{}
[[clients]]
id = "other"
secret = "other-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]

[[clients]]
id = "rs"
secret = "rs-secret"
grant_types = ["client_credentials"]
{}{OPS}{}"#,
        web_client(&["openid", "profile", "email"]),
        spa_client("http://127.0.0.1:9001/", "http://127.0.0.1:9001"),
        user("alice", &[])
    ))
}

async fn tokens(server: &Server, client: (&str, &str)) -> serde_json::Value {
    sign_in_without_pkce(server, client, "alice", "alice-password", "openid", false).await.body
}

fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

async fn introspect(server: &Server, token: &str) -> serde_json::Value {
    let resp = server.post_form("/introspect", Some(("rs", "rs-secret")), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn refresh_status(server: &Server, token: &str) -> u16 {
    refresh(server, WEB, token).await.status().as_u16()
}

async fn admin_token(server: &Server) -> String {
    cc_token(server, "ops", "ops-secret").await
}

#[tokio::test]
async fn introspection_reports_live_tokens_with_their_claims() {
    let server = Server::start(&config(), &[]);
    let t = tokens(&server, ("web", "web-secret")).await;
    let at = introspect(&server, s(&t, "access_token")).await;
    assert_eq!(at["active"], true);
    for field in ["sub", "client_id", "scope", "exp", "iat", "sid", "aud", "iss", "token_type"] {
        assert!(at.get(field).is_some(), "{field} in {at}");
    }
    assert_eq!(
        (at["sub"].as_str(), at["client_id"].as_str(), at["token_type"].as_str()),
        (Some("alice"), Some("web"), Some("Bearer"))
    );
    let rt = introspect(&server, s(&t, "refresh_token")).await;
    for field in ["sub", "client_id", "scope", "exp", "iat", "sid", "aud", "iss", "token_type"] {
        assert!(rt.get(field).is_some(), "{field} in {rt}");
    }
    assert_eq!((rt["active"].as_bool(), rt["sid"].as_str()), (Some(true), at["sid"].as_str()));
    assert_eq!(introspect(&server, "garbage").await, serde_json::json!({"active": false}));
    let cc = introspect(&server, &server.cc_token().await).await;
    assert_eq!(cc["active"], true);
    assert!(cc.get("sid").is_none());
    // A spent refresh token is not active.
    let next: serde_json::Value = server
        .post_form(
            "/token",
            Some(("web", "web-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", s(&t, "refresh_token"))],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(introspect(&server, s(&t, "refresh_token")).await, serde_json::json!({"active": false}));
    assert_eq!(introspect(&server, s(&next, "refresh_token")).await["active"], true);
}

#[tokio::test]
async fn introspection_requires_a_confidential_client() {
    let server = Server::start(&config(), &[]);
    let none = server.post_form("/introspect", None, &[("token", "x")]).await;
    assert_eq!(none.status(), 401);
    let public = server.post_form("/introspect", None, &[("token", "x"), ("client_id", "spa")]).await;
    assert_eq!(public.status(), 401);
    let body: serde_json::Value = public.json().await.unwrap();
    assert!(s(&body, "error_description").contains("public"), "{body}");
}

#[tokio::test]
async fn revoking_a_refresh_token_kills_the_family_at_once() {
    let server = Server::start(&config(), &[]);
    let t = tokens(&server, ("web", "web-secret")).await;
    let resp = server
        .post_form(
            "/revoke",
            Some(("web", "web-secret")),
            &[("token", s(&t, "refresh_token")), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(&server, s(&t, "access_token")).await, serde_json::json!({"active": false}));
    assert_eq!(introspect(&server, s(&t, "refresh_token")).await, serde_json::json!({"active": false}));
    assert_eq!(refresh_status(&server, s(&t, "refresh_token")).await, 400);
    let userinfo = server.http.get(server.url("/userinfo")).bearer_auth(s(&t, "access_token")).send().await.unwrap();
    assert_eq!(userinfo.status(), 401);
}

#[tokio::test]
async fn revoking_an_access_token_kills_its_family_too() {
    let server = Server::start(&config(), &[]);
    let t = tokens(&server, ("web", "web-secret")).await;
    let resp = server.post_form("/revoke", Some(("web", "web-secret")), &[("token", s(&t, "access_token"))]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(refresh_status(&server, s(&t, "refresh_token")).await, 400);
    assert_eq!(introspect(&server, s(&t, "access_token")).await["active"], false);
}

#[tokio::test]
async fn revocation_is_limited_to_the_clients_own_tokens() {
    let server = Server::start(&config(), &[]);
    let t = tokens(&server, ("web", "web-secret")).await;
    let resp = server.post_form("/revoke", Some(("other", "other-secret")), &[("token", s(&t, "refresh_token"))]).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(introspect(&server, s(&t, "refresh_token")).await["active"], true, "nothing was revoked");
    // Unknown tokens answer 200 (RFC 7009 2.2); no authentication answers 401.
    let unknown = server.post_form("/revoke", Some(("web", "web-secret")), &[("token", "rt1.nonsense")]).await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(server.post_form("/revoke", None, &[("token", "x")]).await.status(), 401);
    let missing = server.post_form("/revoke", Some(("web", "web-secret")), &[]).await;
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn the_admin_settings_api_needs_system_administer() {
    let server = Server::start(&config(), &[]);
    let none = server.http.get(server.url("/admin/settings/session")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().await.unwrap();
    assert!(body.get("error").is_some() && body.get("message").is_some(), "{{error, message}}: {body}");
    let user = tokens(&server, ("web", "web-secret")).await;
    let forbidden = server
        .http
        .get(server.url("/admin/settings/session"))
        .bearer_auth(s(&user, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let admin = admin_token(&server).await;
    let ok: serde_json::Value = call(&server, "GET", "/admin/settings/session", Some(&admin), None).await.1;
    assert_eq!(ok["idle_timeout"], 1800);
    assert_eq!(ok["max_lifetime"], 43200);
    assert_eq!(ok["sources"]["idle_timeout"], "default");
}

#[tokio::test]
async fn settings_changes_are_validated_sourced_persisted_and_resettable() {
    let server = Server::start(&config_with_session(), &[("TENURE_SESSION_MAX_LIFETIME", "10h")]);
    let admin = admin_token(&server).await;
    let put = |body: serde_json::Value| {
        server.http.put(server.url("/admin/settings/session")).bearer_auth(&admin).json(&body).send()
    };

    let bad = put(serde_json::json!({"idle_timeout": 7200, "max_lifetime": 3600})).await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_setting");
    assert!(
        s(&body, "message").contains("session.idle_timeout (2h) must not exceed session.max_lifetime (1h)"),
        "{body}"
    );
    let ceiling = put(serde_json::json!({"max_lifetime_ceiling": 86400})).await.unwrap();
    assert_eq!(ceiling.status(), 400);
    let over = put(serde_json::json!({"max_lifetime": 40 * 86400})).await.unwrap();
    assert_eq!(over.status(), 400);
    let unknown = put(serde_json::json!({"idle": 5})).await.unwrap();
    assert_eq!(unknown.status(), 400);

    let ok: serde_json::Value = put(serde_json::json!({"idle_timeout": 600})).await.unwrap().json().await.unwrap();
    assert_eq!(ok["idle_timeout"], 600);
    assert_eq!(ok["sources"]["idle_timeout"], "admin");
    assert_eq!(ok["sources"]["max_lifetime"], "env");
    assert_eq!(ok["sources"]["remember_me_max_lifetime"], "file");
    // New tokens follow at once.
    let t = tokens(&server, ("web", "web-secret")).await;
    assert_eq!(t["expires_in"], 600);

    // It survives a restart (persisted in the store), and the reset drops it.
    let config_text = std::fs::read_to_string(server.path().join("tenure.toml")).unwrap();
    let dir = server.kill_keep_dir();
    let server = Server::start_in(dir, &config_text, &[("TENURE_SESSION_MAX_LIFETIME", "10h")]);
    let admin = admin_token(&server).await;
    let after: serde_json::Value = call(&server, "GET", "/admin/settings/session", Some(&admin), None).await.1;
    assert_eq!(after["idle_timeout"], 600);
    let reset: serde_json::Value = call(&server, "DELETE", "/admin/settings/session", Some(&admin), None).await.1;
    assert_eq!(reset["idle_timeout"], 1800);
    assert_eq!(reset["sources"]["idle_timeout"], "default");
}

fn config_with_session() -> String {
    format!("{}\n[session]\nremember_me_max_lifetime = \"15d\"\n", config())
}

#[tokio::test]
async fn a_shortened_max_lifetime_ends_older_live_sessions_at_their_next_refresh() {
    // One issuer across the restarts below (each binds a new port), so the
    // access token stays ours.
    let issuer = ("TENURE_ISSUER", "http://127.0.0.1:1");
    let server = Server::start(&config(), &[issuer]);
    let old = tokens(&server, ("web", "web-secret")).await;
    // Shorten the absolute lifetime to 1 s. The admin API refuses lifetimes
    // under 5 minutes (harden.rs), so the operator does it through the
    // environment and a restart: once the session is older than that, its
    // next check fails (the real binary runs on the wall clock, so this test
    // waits for at most a few seconds; the exact rules are unit-tested).
    let config_text = std::fs::read_to_string(server.path().join("tenure.toml")).unwrap();
    let tiny = [
        issuer,
        ("TENURE_SESSION_IDLE_TIMEOUT", "1"),
        ("TENURE_SESSION_MAX_LIFETIME", "1"),
        ("TENURE_SESSION_ACCESS_TOKEN_TTL", "1"),
    ];
    let server = Server::start_in(server.kill_keep_dir(), &config_text, &tiny);
    let ended = eventually(Duration::from_secs(5), || async {
        introspect(&server, s(&old, "access_token")).await["active"] == false
    })
    .await;
    assert!(ended, "the older session ends at its next check");
    assert_eq!(refresh_status(&server, s(&old, "refresh_token")).await, 400);
    // Loosening again never revives it.
    let server = Server::start_in(server.kill_keep_dir(), &config_text, &[issuer]);
    assert_eq!(introspect(&server, s(&old, "access_token")).await["active"], false);
    assert_eq!(refresh_status(&server, s(&old, "refresh_token")).await, 400);
    // A new session lives under the restored policy.
    let fresh = tokens(&server, ("web", "web-secret")).await;
    assert_eq!(refresh_status(&server, s(&fresh, "refresh_token")).await, 200);
}
