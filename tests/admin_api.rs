//! The admin API for users, clients and keys, and the settings explain and
//! preview (SPEC 10), end to end over HTTP against the real binary — and the
//! preview once more in process with a manual clock, where sessions can be
//! hours old.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::support::flow::{Browser, pkce_pair};
use crate::support::{Server, config_with};

use crate::support::kit::{
    ROOT_AUTOMATION, WEB_REDIRECT as REDIRECT, call, cc_admin_token, code_exchange, introspect_active, refresh,
    root_token, user, web_client,
};

pub fn config() -> String {
    config_with(&format!("{ROOT_AUTOMATION}{}{}", web_client(&["openid", "profile", "admin"]), user("alice", &[])))
}

/// `system:administer`.
async fn root(server: &Server) -> String {
    root_token(server).await
}

/// `users:edit` only.
async fn helpdesk(server: &Server) -> String {
    cc_admin_token(server, "automation", "automation-secret").await
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

/// Sign `user` in at `web` with a fresh browser; (access, refresh).
async fn sign_in(server: &Server, user: &str, password: &str) -> (String, String) {
    let tokens = crate::support::kit::sign_in(server, user, password, "openid").await;
    (tokens.access(), tokens.refresh())
}

fn kid(jwt: &str) -> String {
    let header: Value = serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn users_are_created_found_changed_and_deleted_with_every_rule_enforced() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let helpdesk = helpdesk(&server).await;

    // 401 without a token, 403 without the permission.
    assert_eq!(call(&server, "GET", "/admin/users", None, None).await.0, 401);
    let orders = server.cc_token().await;
    assert_eq!(call(&server, "GET", "/admin/users", Some(&orders), None).await.0, 403);

    // Create: validation names the field and the rule.
    let (s, b) =
        call(&server, "POST", "/admin/users", Some(&helpdesk), Some(json!({"username": "dave", "password": "short"})))
            .await;
    assert_eq!(s, 400);
    assert_eq!(message(&b), "password: must be at least 8 characters");
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&helpdesk),
        Some(json!({"username": "a b", "password": "long-enough"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(message(&b).starts_with("username:"), "{b}");
    let (s, b) =
        call(&server, "POST", "/admin/users", Some(&helpdesk), Some(json!({"username": "dave", "pasword": "x"}))).await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("unknown field `pasword`"), "{b}");
    // users:edit may create users but not hand out permissions.
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&helpdesk),
        Some(json!({"username": "eve", "password": "eve-password", "permissions": ["system:administer"]})),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&helpdesk),
        Some(json!({"username": "dave", "password": "dave-password", "email": "dave@example.com"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["source"], "admin");
    assert!(b.get("password").is_none() && b.get("password_hash").is_none(), "never a password: {b}");
    let (s, _) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&helpdesk),
        Some(json!({"username": "dave", "password": "dave-password"})),
    )
    .await;
    assert_eq!(s, 409, "a duplicate");
    let (s, _) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&helpdesk),
        Some(json!({"username": "web", "password": "web-password"})),
    )
    .await;
    assert_eq!(s, 409, "a username may not be a client id");

    // List, search, show.
    let (s, b) = call(&server, "GET", "/admin/users", Some(&helpdesk), None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = b["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "dave"]);
    assert_eq!(b["users"][0]["source"], "config");
    assert_eq!(b["next_page"], Value::Null);
    let (_, b) = call(&server, "GET", "/admin/users?query=EXAMPLE.com", Some(&helpdesk), None).await;
    assert_eq!(b["users"].as_array().unwrap().len(), 1);
    assert_eq!(b["users"][0]["username"], "dave");
    assert_eq!(call(&server, "GET", "/admin/users?page=0", Some(&helpdesk), None).await.0, 400);
    let (s, b) = call(&server, "GET", "/admin/users/dave", Some(&helpdesk), None).await;
    assert_eq!((s, b["email"].as_str()), (200, Some("dave@example.com")));
    assert_eq!(call(&server, "GET", "/admin/users/nobody", Some(&helpdesk), None).await.0, 404);

    // Config users are read-only.
    let (s, b) = call(&server, "PATCH", "/admin/users/alice", Some(&root), Some(json!({"disabled": true}))).await;
    assert_eq!(s, 409);
    assert!(message(&b).contains("config file"), "{b}");

    // A password reset takes effect (and ends dave's sessions: tests/passwords.rs).
    let (s, _) =
        call(&server, "PATCH", "/admin/users/dave", Some(&helpdesk), Some(json!({"password": "new-dave-password"})))
            .await;
    assert_eq!(s, 200);
    let (_, dave_refresh) = sign_in(&server, "dave", "new-dave-password").await;
    let (s, _) =
        call(&server, "PATCH", "/admin/users/dave", Some(&helpdesk), Some(json!({"permissions": ["users:edit"]})))
            .await;
    assert_eq!(s, 403, "users:edit cannot grant permissions");
    let (s, b) =
        call(&server, "PATCH", "/admin/users/dave", Some(&root), Some(json!({"permissions": ["users:edit"]}))).await;
    assert_eq!((s, b["permissions"].clone()), (200, json!(["users:edit"])));
    // Now dave holds a permission: a helpdesk may no longer reset his
    // password, disable or delete him (it could sign in as him).
    for (method, body) in [
        ("PATCH", Some(json!({"password": "taken-over-1"}))),
        ("PATCH", Some(json!({"disabled": true}))),
        ("DELETE", None),
    ] {
        let (s, b) = call(&server, method, "/admin/users/dave", Some(&helpdesk), body).await;
        assert_eq!(s, 403, "{method}: {b}");
        assert!(message(&b).contains("needs the system:administer permission"), "{b}");
    }
    let (s, _) = call(&server, "PATCH", "/admin/users/dave", Some(&root), Some(json!({"permissions": []}))).await;
    assert_eq!(s, 200);

    // Disabling kills every session at once and refuses the next sign-in.
    let resp = refresh(&server, ("web", "web-secret"), &dave_refresh).await;
    assert_eq!(resp.status(), 200, "alive before");
    let dave_refresh = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    let (s, b) = call(&server, "PATCH", "/admin/users/dave", Some(&helpdesk), Some(json!({"disabled": true}))).await;
    assert_eq!((s, b["disabled"].as_bool()), (200, Some(true)));
    let resp = refresh(&server, ("web", "web-secret"), &dave_refresh).await;
    assert_eq!(resp.status(), 400, "a disabled user's refresh token fails at once");
    let browser = Browser::new();
    let (_, challenge) = pkce_pair();
    let page = browser
        .authorize(
            &server,
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", REDIRECT),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let posted = browser.submit_sign_in(&server, &page, "dave", "new-dave-password", false).await;
    assert_ne!(posted.status(), 303, "a disabled user cannot sign in");

    // Delete: 204, then gone; the audit log names the actor.
    assert_eq!(call(&server, "DELETE", "/admin/users/dave", Some(&helpdesk), None).await.0, 204);
    assert_eq!(call(&server, "GET", "/admin/users/dave", Some(&helpdesk), None).await.0, 404);
    assert_eq!(call(&server, "DELETE", "/admin/users/dave", Some(&helpdesk), None).await.0, 404);
    let (_, audit) = call(&server, "GET", "/admin/audit?limit=20", Some(&root), None).await;
    let kinds: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    for kind in ["user_created", "user_updated", "user_disabled", "user_deleted"] {
        assert!(kinds.iter().any(|(k, _)| *k == kind), "{kind} in {kinds:?}");
    }
    assert!(kinds.contains(&("user_deleted", "client:automation")), "{kinds:?}");

    // Filters: by kind, by user; users:edit reads the log.
    let (s, b) = call(&server, "GET", "/admin/audit?kind=user_deleted", Some(&helpdesk), None).await;
    assert_eq!(s, 200);
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{b}");
    assert_eq!(events[0]["target"], "user:dave");
    let (_, b) = call(&server, "GET", "/admin/audit?user=dave&limit=2", Some(&helpdesk), None).await;
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{b}");
    assert!(
        events.iter().all(|e| e["target"] == "user:dave" || e["actor"] == "dave" || e["details"]["sub"] == "dave"),
        "{b}"
    );
    let next = b["next"].as_str().expect("more events about dave").to_owned();
    let (_, b) = call(&server, "GET", &format!("/admin/audit?user=dave&before={next}"), Some(&helpdesk), None).await;
    assert!(!b["events"].as_array().unwrap().is_empty(), "the next page continues the filtered search");
}

#[tokio::test]
async fn clients_are_registered_validated_rotated_and_deleted() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let helpdesk = helpdesk(&server).await;
    assert_eq!(call(&server, "GET", "/admin/clients", Some(&helpdesk), None).await.0, 403);

    // A confidential client without a secret gets one, shown once.
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "reports", "grant_types": ["client_credentials"], "scopes": ["reports:read"]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let secret = b["client_secret"].as_str().expect("a generated secret").to_owned();
    assert!(secret.len() >= 43, "256 bits");
    let (s, shown) = call(&server, "GET", "/admin/clients/reports", Some(&root), None).await;
    assert_eq!(s, 200);
    assert!(shown.get("client_secret").is_none() && shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["source"], "admin");
    let resp = server.post_form("/token", Some(("reports", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(resp.status(), 200, "the new client authenticates");

    // Rotating the secret: the old one fails at once, the new one works.
    let (s, b) = call(&server, "POST", "/admin/clients/reports/secret", Some(&root), None).await;
    assert_eq!(s, 200);
    let rotated = b["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(rotated, secret);
    let old = server.post_form("/token", Some(("reports", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(old.status(), 401);
    let new = server.post_form("/token", Some(("reports", &rotated)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(new.status(), 200);

    // Validation as for config clients; per-client limits may only tighten.
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "kubectl", "public": true, "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:8000/"], "session": {"max_lifetime": 13 * 3600}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(message(&b), "clients[kubectl].session.max_lifetime (13h) must not exceed session.max_lifetime (12h)");
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "kubectl", "public": true, "grant_types": ["authorization_code"], "redirect_uris": []})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(message(&b), "redirect_uris: authorization_code needs at least one redirect URI");
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "kubectl", "public": true, "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:8000/"], "session": {"max_lifetime": 3600}})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(b.get("client_secret").is_none(), "a public client has no secret");
    assert_eq!(b["session"]["max_lifetime"], 3600);
    // A browser app registered at run time gets CORS at once.
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "dashboard", "public": true, "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:9300/"], "web_origins": ["http://127.0.0.1:9300"]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/token"))
        .header("origin", "http://127.0.0.1:9300")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()),
        Some("http://127.0.0.1:9300")
    );

    // Replace; config clients are read-only; unknown ones 404.
    let (s, b) = call(
        &server,
        "PUT",
        "/admin/clients/kubectl",
        Some(&root),
        Some(json!({"public": true, "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://127.0.0.1:8001/"], "session": {"max_lifetime": 1800}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["redirect_uris"], json!(["http://127.0.0.1:8001/"]));
    assert_eq!(
        call(&server, "PUT", "/admin/clients/web", Some(&root), Some(json!({"grant_types": ["client_credentials"]})))
            .await
            .0,
        409
    );
    assert_eq!(call(&server, "GET", "/admin/clients/nope", Some(&root), None).await.0, 404);
    assert_eq!(call(&server, "DELETE", "/admin/clients/nope", Some(&root), None).await.0, 404);
    let (_, list) = call(&server, "GET", "/admin/clients", Some(&root), None).await;
    let ids: Vec<&str> = list["clients"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"kubectl") && ids.contains(&"web") && ids.contains(&"reports"), "{ids:?}");

    // Deleting a client kills its families: register a web app, sign in at
    // it, delete it; its tokens die and it cannot authenticate.
    let (s, b) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&root),
        Some(json!({"id": "wiki", "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [REDIRECT],
                    "secret": "wiki-secret-long-enough"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(b.get("client_secret").is_none(), "a given secret is not echoed");
    let browser = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let query = [
        ("response_type", "code"),
        ("client_id", "wiki"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = browser.sign_in_for_code(&server, &query, "alice", "alice-password", false).await;
    let resp = code_exchange(&server, ("wiki", "wiki-secret-long-enough"), &code, REDIRECT, Some(&verifier)).await;
    assert_eq!(resp.status(), 200);
    let access = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert!(introspect_active(&server, &access).await);
    assert_eq!(call(&server, "DELETE", "/admin/clients/wiki", Some(&root), None).await.0, 204);
    assert!(!introspect_active(&server, &access).await, "the deleted client's tokens are dead");
    let resp = server
        .post_form("/token", Some(("wiki", "wiki-secret-long-enough")), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_rotated_key_is_published_ahead_and_used_while_old_tokens_still_verify() {
    // Publish-ahead of 3 s: the new key is in the JWKS before it signs.
    let server = Server::start(&config(), &[("TENURE_KEY_PUBLISH_AHEAD", "3s")]);
    let root = root(&server).await;
    assert_eq!(call(&server, "GET", "/admin/keys", Some(&helpdesk(&server).await), None).await.0, 403);
    let (s, b) = call(&server, "GET", "/admin/keys", Some(&root), None).await;
    assert_eq!(s, 200);
    let keys = b["keys"].as_array().unwrap();
    let active: Vec<&Value> = keys.iter().filter(|k| k["state"] == "active" && k["role"] == "primary").collect();
    assert_eq!(active.len(), 1, "{b}");
    assert!(keys.iter().any(|k| k["role"] == "rs256_companion" && k["alg"] == "RS256"), "{b}");
    let old_kid = active[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid(&root), old_kid);
    assert!(active[0]["age_seconds"].as_u64().is_some());

    let (s, rotated) = call(&server, "POST", "/admin/keys/rotate", Some(&root), None).await;
    assert_eq!(s, 201, "{rotated}");
    let new_primary =
        rotated["keys"].as_array().unwrap().iter().find(|k| k["role"] == "primary").expect("a new primary");
    assert_eq!(new_primary["state"], "next", "{rotated}");
    let new_kid = new_primary["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let jwks = server.jwks().await;
    assert!(jwks.find(&old_kid).is_some() && jwks.find(&new_kid).is_some(), "both published");
    assert_eq!(kid(&server.cc_token().await), old_kid, "the old key signs until the new one is due");

    // After the publish-ahead period the new key signs; old tokens verify.
    let switched = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        kid(&server.cc_token().await) == new_kid
    })
    .await;
    assert!(switched, "the new key signs after key_publish_ahead");
    assert!(introspect_active(&server, &root).await, "a token of the old key still verifies");
    let fresh = server.cc_token().await;
    let data = crate::support::verify(&fresh, &server.jwks().await, &server.base, &server.base);
    assert_eq!(data.header.kid.as_deref(), Some(new_kid.as_str()));
    let (_, b) = call(&server, "GET", "/admin/keys", Some(&root), None).await;
    let state_of = |kid: &str| {
        b["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).map(|k| k["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(&old_kid).as_deref(), Some("retired"), "{b}");
    assert_eq!(state_of(&new_kid).as_deref(), Some("active"), "{b}");
    let (_, audit) = call(&server, "GET", "/admin/audit?kind=key_rotated", Some(&root), None).await;
    assert_eq!(audit["events"][0]["actor"], "client:root-automation");
}

#[tokio::test]
async fn explain_names_the_rule_behind_each_value() {
    let text = config()
        + "\n[[clients]]\nid = \"kubectl\"\npublic = true\nredirect_uris = [\"http://127.0.0.1:8000/\"]\ngrant_types = [\"authorization_code\", \"refresh_token\"]\nsession = { max_lifetime = \"1h\" }\n";
    let server = Server::start(&text, &[("TENURE_SESSION_IDLE_TIMEOUT", "20m")]);
    let root = root(&server).await;
    let (s, b) =
        call(&server, "GET", "/admin/settings/session/explain?client_id=kubectl&username=alice", Some(&root), None)
            .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["max_lifetime"]["value"].as_u64(), b["max_lifetime"]["rule"].as_str()), (Some(3600), Some("client")));
    assert_eq!((b["idle_timeout"]["value"].as_u64(), b["idle_timeout"]["rule"].as_str()), (Some(1200), Some("env")));
    assert_eq!(b["access_token_ttl"]["value"], 1200);
    assert_eq!(b["refresh_reuse_grace"]["rule"], "default");
    let (_, b) = call(&server, "GET", "/admin/settings/session/explain?remember_me=true", Some(&root), None).await;
    assert_eq!(
        (b["max_lifetime"]["value"].as_u64(), b["max_lifetime"]["rule"].as_str()),
        (Some(20 * 86400), Some("remember_me"))
    );
    assert_eq!(call(&server, "GET", "/admin/settings/session/explain?client_id=nope", Some(&root), None).await.0, 404);
    assert_eq!(call(&server, "GET", "/admin/settings/session/explain?username=nobody", Some(&root), None).await.0, 404);
    assert_eq!(
        call(&server, "GET", "/admin/settings/session/explain?remember_me=maybe", Some(&root), None).await.0,
        400
    );
    assert_eq!(
        call(&server, "GET", "/admin/settings/session/explain", Some(&helpdesk(&server).await), None).await.0,
        403
    );
}

#[tokio::test]
async fn a_preview_counts_live_sessions_and_changes_nothing() {
    // Idle timeout off: a session lives until its maximum lifetime.
    let server = Server::start(&config(), &[("TENURE_SESSION_IDLE_TIMEOUT", "off")]);
    let root = root(&server).await;
    let (_, refresh_a) = sign_in(&server, "alice", "alice-password").await;
    let (_, _refresh_b) = sign_in(&server, "alice", "alice-password").await;
    let before = call(&server, "GET", "/admin/settings/session", Some(&root), None).await.1;

    // Shorter than the default 12 h (and longer than the sessions' age).
    let (s, b) =
        call(&server, "POST", "/admin/settings/session/preview", Some(&root), Some(json!({"max_lifetime": 6 * 3600})))
            .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["valid"], true);
    assert_eq!((b["sessions_ending_now"].as_u64(), b["sessions_shortened"].as_u64()), (Some(0), Some(2)), "{b}");
    assert_eq!(b["by_client"]["web"]["shortened"], 2, "{b}");
    // An idle timeout where there was none shortens both.
    let (_, b) =
        call(&server, "POST", "/admin/settings/session/preview", Some(&root), Some(json!({"idle_timeout": 1800})))
            .await;
    assert_eq!((b["sessions_shortened"].as_u64(), b["sessions_unchanged"].as_u64()), (Some(2), Some(0)), "{b}");
    // A longer maximum shortens nothing.
    let (_, b) =
        call(&server, "POST", "/admin/settings/session/preview", Some(&root), Some(json!({"max_lifetime": 86400})))
            .await;
    assert_eq!((b["sessions_shortened"].as_u64(), b["sessions_extended"].as_u64()), (Some(0), Some(2)), "{b}");
    // Invalid: the same refusal as a PUT.
    let bad = json!({"idle_timeout": 13 * 3600});
    let (s1, preview) = call(&server, "POST", "/admin/settings/session/preview", Some(&root), Some(bad.clone())).await;
    let (s2, put) = call(&server, "PUT", "/admin/settings/session", Some(&root), Some(bad)).await;
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(preview, put);
    // Nothing changed: settings as before, sessions alive.
    assert_eq!(call(&server, "GET", "/admin/settings/session", Some(&root), None).await.1, before);
    assert_eq!(refresh(&server, ("web", "web-secret"), &refresh_a).await.status(), 200);
    assert_eq!(
        call(&server, "POST", "/admin/settings/session/preview", Some(&helpdesk(&server).await), Some(json!({})))
            .await
            .0,
        403
    );
}

/// In process, with a manual clock: sessions hours old, a shortened maximum
/// ends some now, a shortened idle timeout ends the idle ones, a per-client
/// override counts under its client.
#[tokio::test]
async fn a_preview_of_shorter_limits_counts_the_sessions_it_would_end() {
    use tenure::clock::{Clock, ManualClock, UnixTime};
    use tenure::config::Config;
    use tenure::duration::Secs;
    use tenure::http::AppState;
    use tenure::policy::{IdleTimeout, PolicyLayer, PolicyLayers};
    use tenure::session::code::AuthCode;
    use tenure::session::family::Family;
    use tenure::session::user_session::UserSession;
    use tenure::store::{SledStore, Store};

    const T0: UnixTime = UnixTime(1_800_000_000);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "keys_dir = {:?}\n[session]\nidle_timeout = \"2h\"\n[[clients]]\nid = \"web\"\nsecret = \"s\"\nredirect_uris = [\"{REDIRECT}\"]\ngrant_types = [\"authorization_code\", \"refresh_token\"]\n[[clients]]\nid = \"kubectl\"\npublic = true\nredirect_uris = [\"{REDIRECT}\"]\ngrant_types = [\"authorization_code\", \"refresh_token\"]\nsession = {{ max_lifetime = \"2h\" }}\n",
        dir.path().join("keys")
    );
    let config = Config::from_toml(&text, &Default::default()).unwrap();
    let store = SledStore::temporary().unwrap();
    let clock = Arc::new(ManualClock::at(T0));
    let state =
        AppState::new(config.clone(), "http://127.0.0.1:1".into(), store.clone().into(), clock.clone()).await.unwrap();

    // (signed in, last active, client)
    let sessions = [
        // 6 h 10 min old, last active 70 min ago.
        (T0, T0.plus(Secs::hours(5)), "web"),
        // Idle for 2 h 10 min: dead under the 2 h idle timeout already.
        (T0.plus(Secs::hours(4)), T0.plus(Secs::hours(4)), "web"),
        // 70 min old, active just now, at the client capped at 2 h.
        (T0.plus(Secs::hours(5)), T0.plus(Secs::minutes(370)), "kubectl"),
    ];
    for (i, (signed_in, active, client)) in sessions.iter().enumerate() {
        let (mut s, _) = UserSession::start("alice", false, None, None, *signed_in).unwrap();
        s.last_active = *signed_in;
        store.put_session(&s, signed_in.plus(Secs::days(30))).await.unwrap();
        let code = AuthCode {
            client_id: (*client).into(),
            redirect_uri: REDIRECT.into(),
            redirect_uri_given: true,
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            sid: s.sid.clone(),
            username: "alice".into(),
            auth_time: *signed_in,
            remember_me: false,
            issued_at: *signed_in,
            redeemed_family: None,
            dpop_jkt: None,
        };
        let key = format!("code-{i}");
        store.put_code(key.as_bytes(), &code).await.unwrap();
        let family = Family {
            id: format!("fam-{i}"),
            salt: "salt".into(),
            sid: s.sid.clone(),
            username: "alice".into(),
            client_id: (*client).into(),
            scope: "openid".into(),
            auth_time: *signed_in,
            remember_me: false,
            created_at: *signed_in,
            generation: 1,
            rotated_at: *active,
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        };
        store
            .redeem_code(key.as_bytes(), &family, signed_in.plus(Secs::days(30)), *signed_in, &tenure::store::NoFallout)
            .await
            .unwrap();
    }
    clock.set(T0.plus(Secs::minutes(6 * 60 + 10)));
    let now = clock.now();
    let current = state.policy().0.clone();
    let with = |layer: PolicyLayer| PolicyLayers { admin: layer, ..config.policy_layers.clone() }.resolve().unwrap().0;
    // Session 2 (last active T0+4h, idle 2h) died at T0+6h: not counted.
    let p = tenure::service::explain::preview(&state, &current, now).await.unwrap();
    assert_eq!((p.sessions_unchanged, p.sessions_shortened, p.sessions_ending_now), (2, 0, 0), "{p:?}");
    // Max lifetime 3 h: the 6 h old session ends now, the 1 h old one is shortened.
    let p = tenure::service::explain::preview(
        &state,
        &with(PolicyLayer { max_lifetime: Some(Secs::hours(3)), ..Default::default() }),
        now,
    )
    .await
    .unwrap();
    assert_eq!((p.sessions_ending_now, p.sessions_shortened, p.sessions_unchanged), (1, 1, 0), "{p:?}");
    assert_eq!(p.by_client["web"].ending_now, 1);
    // kubectl's family is capped at 2 h by its client: unchanged by a 3 h maximum.
    assert_eq!(p.by_client["kubectl"].unchanged, 1, "{p:?}");
    // Idle 30 min: the session last active 70 min ago ends now; the one
    // active 10 min ago is shortened.
    let p = tenure::service::explain::preview(
        &state,
        &with(PolicyLayer { idle_timeout: Some(IdleTimeout::After(Secs::minutes(30))), ..Default::default() }),
        now,
    )
    .await
    .unwrap();
    assert_eq!((p.sessions_ending_now, p.sessions_shortened), (1, 1), "{p:?}");
    // Nothing was written: the same preview again gives the same answer.
    let again = tenure::service::explain::preview(&state, &current, now).await.unwrap();
    assert_eq!(again.sessions_unchanged, 2);
}

/// A subject is never given again (RFC 9700 4.15; SECURITY.md "Authority
/// and cost"): a deleted user's name cannot come back as a user or a
/// client, and a deleted client's id cannot become a username. Run on each
/// store (the PostgreSQL run is in postgres.rs).
pub async fn names_are_never_given_again(server: &Server) {
    let root = root(server).await;
    let user = |name: &str| json!({"username": name, "password": "a-long-password"});
    let client = |id: &str| json!({"id": id, "grant_types": ["client_credentials"], "scopes": ["orders:read"]});

    assert_eq!(call(server, "POST", "/admin/users", Some(&root), Some(user("bob"))).await.0, 201);
    assert_eq!(call(server, "DELETE", "/admin/users/bob", Some(&root), None).await.0, 204);
    let (s, b) = call(server, "POST", "/admin/users", Some(&root), Some(user("bob"))).await;
    assert_eq!((s, b["error"].as_str()), (409, Some("conflict")), "{b}");
    assert_eq!(
        message(&b),
        "username: \"bob\" belonged to a deleted user; a username is never given again, so the old user's \
         subject never names someone else"
    );
    let (s, b) = call(server, "POST", "/admin/clients", Some(&root), Some(client("bob"))).await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).starts_with("id: \"bob\" was the username of a deleted user"), "{b}");

    // A deleted client's id never becomes a username; it may name a client again.
    assert_eq!(call(server, "POST", "/admin/clients", Some(&root), Some(client("reports"))).await.0, 201);
    assert_eq!(call(server, "DELETE", "/admin/clients/reports", Some(&root), None).await.0, 204);
    let (s, b) = call(server, "POST", "/admin/users", Some(&root), Some(user("reports"))).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(
        message(&b),
        "username: \"reports\" was the id of a deleted client; a user must never share a client's subject"
    );

    // Live names: a user named like a client, a client named like a user.
    let (s, b) = call(server, "POST", "/admin/users", Some(&root), Some(user("orders-api"))).await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("is a client id"), "{b}");
    assert_eq!(call(server, "POST", "/admin/users", Some(&root), Some(user("carol"))).await.0, 201);
    let (s, b) = call(server, "POST", "/admin/clients", Some(&root), Some(client("carol"))).await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("is a username"), "{b}");
    // Other names are still free.
    assert_eq!(call(server, "POST", "/admin/users", Some(&root), Some(user("bobby"))).await.0, 201);
}

/// Serve from `dir`, which must fail to start; its log (stderr).
fn refused_start(dir: &std::path::Path) -> String {
    let out = crate::support::tenure()
        .current_dir(dir)
        .env("TENURE_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_deleted_username_is_never_given_again() {
    let server = Server::start(&config(), &[]);
    names_are_never_given_again(&server).await;
    // Nor by the config file: a restart with a config user named like the
    // deleted one is refused, naming the user and the rule.
    let dir = server.kill_keep_dir();
    let with_bob = format!("{}\n[[users]]\nusername = \"bob\"\npassword = \"bob-password\"\n", config());
    std::fs::write(dir.path().join("tenure.toml"), &with_bob).unwrap();
    let out = crate::support::tenure().arg("check-config").current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "the file alone is valid: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = refused_start(dir.path());
    assert!(
        stderr.contains("users[bob].username was the username of a deleted user; a subject is never given again"),
        "{stderr}"
    );
    let with_carol_client = format!(
        "{}\n[[clients]]\nid = \"carol\"\nsecret = \"carol-secret\"\ngrant_types = [\"client_credentials\"]\n",
        config()
    );
    std::fs::write(dir.path().join("tenure.toml"), &with_carol_client).unwrap();
    let stderr = refused_start(dir.path());
    assert!(stderr.contains("clients[carol].id is the username of a user created (or deleted)"), "{stderr}");
}

/// SECURITY.md: tenure's own outbound requests reach only what the operator
/// allows. A back-channel logout URI set through the admin API may not
/// point at the issuer's host or its private networks (a 400 naming the
/// field, on create and on replace), unless the operator lists the network
/// in `logout.allowed_private_networks`; then the logout is delivered there.
#[tokio::test]
async fn admin_clients_back_channel_logout_reaches_only_allowed_addresses() {
    let spec = |uri: &str| {
        json!({
            "id": "rp",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid"],
            "backchannel_logout_uri": uri,
        })
    };
    let server = Server::start(&config(), &[]);
    let token = root(&server).await;
    for uri in ["http://127.0.0.1:9/bc", "http://localhost:9/bc", "http://169.254.169.254/latest", "http://10.0.0.7/bc"]
    {
        let (status, body) = call(&server, "POST", "/admin/clients", Some(&token), Some(spec(uri))).await;
        assert_eq!(status, 400, "{uri}: {body}");
        let message = body.to_string();
        assert!(
            message.contains("backchannel_logout_uri") && message.contains("logout.allowed_private_networks"),
            "{uri}: {body}"
        );
    }
    let (status, body) =
        call(&server, "POST", "/admin/clients", Some(&token), Some(spec("https://rp.example.com/bc"))).await;
    assert_eq!(status, 201, "a public address: {body}");
    let (status, body) = call(&server, "PUT", "/admin/clients/rp", Some(&token), Some(spec("http://[::1]:9/bc"))).await;
    assert_eq!(status, 400, "replacing it with a loopback address: {body}");

    // The operator allows this host: created, and the logout arrives.
    let rp = crate::support::kit::LogoutReceiver::start().await;
    let allowed = format!("{}\n[logout]\nallowed_private_networks = [\"127.0.0.1\"]\n", config());
    let server = Server::start(&allowed, &[]);
    let token = root(&server).await;
    let (status, created) = call(&server, "POST", "/admin/clients", Some(&token), Some(spec(&rp.uri))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().expect("a generated secret").to_owned();
    let tokens =
        crate::support::kit::sign_in_without_pkce(&server, ("rp", &secret), "alice", "alice-password", "openid", false)
            .await;
    let (status, body) = call(&server, "DELETE", "/admin/users/alice/sessions", Some(&token), None).await;
    assert_eq!(status, 204, "{body}");
    let sid = tokens.sid();
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(20), || async { rp.received().contains(&sid) }).await,
        "delivered to the allowed network: {:?}",
        rp.received()
    );
}
