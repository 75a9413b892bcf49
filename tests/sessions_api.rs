//! The account and admin session API end to end (SPEC 4): listing with both
//! clocks, revoking one session, all of a user's, or one's own everywhere —
//! each killing every descendant token — the 401/403/404 rules, and the
//! audit log paged newest first.

use serde_json::Value;

use crate::support::flow::Browser;
use crate::support::kit::{cc_admin_token, claims, sign_in_in, user, web_client};
use crate::support::{Server, config_with};

fn config() -> String {
    config_with(&format!(
        "{}{}{}{}{}",
        web_client(&["openid", "profile", "admin"]),
        user("alice", &[]),
        user("bob", &[]),
        user("carol", &["users:edit"]),
        user("root", &["system:administer"])
    ))
}

/// What a sign-in at `web` yields.
struct Signed {
    access: String,
    refresh: String,
    sid: String,
}

/// Sign `user` in with a fresh browser (a new session) sending `user_agent`,
/// and redeem the code at `web` with PKCE.
async fn sign_in_as(server: &Server, user: &str, scope: &str, user_agent: &str, remember_me: bool) -> Signed {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap();
    let browser = Browser { http };
    let tokens = sign_in_in(server, &browser, user, &format!("{user}-password"), scope, remember_me).await;
    Signed { access: tokens.access(), refresh: tokens.refresh(), sid: tokens.sid() }
}

async fn sign_in(server: &Server, user: &str) -> Signed {
    sign_in_as(server, user, "openid", "test-agent", false).await
}

/// A token of `user` with the admin scope (and so their permissions).
async fn admin_token(server: &Server, user: &str) -> String {
    let signed = sign_in_as(server, user, "openid admin", "admin-console", false).await;
    assert!(claims(&signed.access).get("permissions").is_some(), "{user} has permissions");
    signed.access
}

/// A client-credentials token of the `automation` service account
/// (`users:edit`).
async fn service_token(server: &Server) -> String {
    cc_admin_token(server, "automation", "automation-secret").await
}

async fn call(server: &Server, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = server.http.request(method, server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// GET `path` with `token`: 200 with `no-store`, and the JSON body.
async fn get_ok(server: &Server, path: &str, token: &str) -> Value {
    let resp = call(server, reqwest::Method::GET, path, Some(token)).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

/// DELETE `path` with `token` and return the status (204s carry `no-store`).
async fn delete(server: &Server, path: &str, token: &str) -> u16 {
    let resp = call(server, reqwest::Method::DELETE, path, Some(token)).await;
    assert_eq!(resp.headers()["cache-control"], "no-store", "DELETE {path}");
    resp.status().as_u16()
}

/// The `{"error","message"}` body of a refusal with `status`.
async fn refused(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    body
}

async fn refresh(server: &Server, token: &str) -> reqwest::Response {
    server
        .post_form("/token", Some(("web", "web-secret")), &[("grant_type", "refresh_token"), ("refresh_token", token)])
        .await
}

/// Refresh successfully; the successor refresh token.
async fn assert_refreshes(server: &Server, token: &str) -> String {
    let resp = refresh(server, token).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

async fn assert_refresh_refused(server: &Server, token: &str) {
    let resp = refresh(server, token).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

async fn userinfo_status(server: &Server, access: &str) -> u16 {
    call(server, reqwest::Method::GET, "/userinfo", Some(access)).await.status().as_u16()
}

/// The live sessions' sids (ended ones are listed after them: SPEC 14,
/// tests/end_reasons.rs).
fn sids(listing: &Value) -> Vec<String> {
    let sessions = listing["sessions"].as_array().unwrap().iter();
    sessions.filter(|s| s["ended"] == false).map(|s| s["sid"].as_str().unwrap().to_owned()).collect()
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    assert!(s.ends_with('Z'), "{s} is in UTC");
    chrono::DateTime::parse_from_rfc3339(s).unwrap()
}

#[tokio::test]
async fn my_sessions_are_listed_newest_first_with_both_clocks() {
    let server = Server::start(&config(), &[]);
    let first = sign_in_as(&server, "alice", "openid", "Firefox/128", false).await;
    let second = sign_in_as(&server, "alice", "openid", "Safari/17", true).await;
    sign_in(&server, "bob").await;

    let listing = get_ok(&server, "/account/sessions", &first.access).await;
    assert_eq!(sids(&listing), vec![second.sid.clone(), first.sid.clone()], "newest first, only mine");
    let [newer, older] = listing["sessions"].as_array().unwrap().as_slice() else { panic!("{listing}") };

    assert_eq!(older["client_ids"], serde_json::json!(["web"]));
    assert_eq!(older["user_agent"], "Firefox/128");
    assert_eq!(older["ip"], "127.0.0.1");
    assert_eq!(older["remember_me"], false);
    assert_eq!(older["current"], true, "the caller's own session");
    // Sign-in, the redirect with the code and its exchange are activity;
    // they may straddle a second.
    let created = time(&older["created_at"]);
    let last_active = time(&older["last_active_at"]);
    assert!((0..=5).contains(&(last_active - created).num_seconds()), "{older}");
    assert_eq!((time(&older["idle_expires_at"]) - last_active).num_seconds(), 1800);
    assert_eq!((time(&older["expires_at"]) - created).num_seconds(), 12 * 3600);

    assert_eq!(newer["user_agent"], "Safari/17");
    assert_eq!(newer["remember_me"], true);
    assert_eq!(newer["current"], false);
    let created = time(&newer["created_at"]);
    assert_eq!((time(&newer["idle_expires_at"]) - time(&newer["last_active_at"])).num_seconds(), 7 * 86400);
    assert_eq!((time(&newer["expires_at"]) - created).num_seconds(), 20 * 86400);

    let from_second = get_ok(&server, "/account/sessions", &second.access).await;
    assert_eq!(from_second["sessions"][0]["current"], true);
    assert_eq!(from_second["sessions"][1]["current"], false);
}

#[tokio::test]
async fn revoking_one_of_my_sessions_kills_its_tokens_and_spares_the_others() {
    let server = Server::start(&config(), &[]);
    let phone = sign_in(&server, "alice").await;
    let laptop = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;

    assert_eq!(delete(&server, &format!("/account/sessions/{}", phone.sid), &laptop.access).await, 204);
    assert_refresh_refused(&server, &phone.refresh).await;
    assert_eq!(userinfo_status(&server, &phone.access).await, 401, "its access token dies at once");
    assert_refreshes(&server, &laptop.refresh).await;
    assert_eq!(userinfo_status(&server, &laptop.access).await, 200);
    assert_eq!(sids(&get_ok(&server, "/account/sessions", &laptop.access).await), vec![laptop.sid.clone()]);
    // Idempotent for my own session, live or not.
    assert_eq!(delete(&server, &format!("/account/sessions/{}", phone.sid), &laptop.access).await, 204);

    // Someone else's session is indistinguishable from an unknown one.
    let theirs = format!("/account/sessions/{}", bob.sid);
    let theirs = refused(call(&server, reqwest::Method::DELETE, &theirs, Some(&laptop.access)).await, 404).await;
    let unknown = format!("/account/sessions/{}", "0".repeat(32));
    let unknown = refused(call(&server, reqwest::Method::DELETE, &unknown, Some(&laptop.access)).await, 404).await;
    assert_eq!(theirs, unknown);
    let malformed = call(&server, reqwest::Method::DELETE, "/account/sessions/not-a-sid", Some(&laptop.access)).await;
    refused(malformed, 404).await;
    assert_refreshes(&server, &bob.refresh).await;
}

#[tokio::test]
async fn signing_out_everywhere_kills_every_session_and_a_new_sign_in_works() {
    let server = Server::start(&config(), &[]);
    let a = sign_in(&server, "alice").await;
    let b = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;

    assert_eq!(delete(&server, "/account/sessions", &a.access).await, 204);
    assert_refresh_refused(&server, &a.refresh).await;
    assert_refresh_refused(&server, &b.refresh).await;
    let gone = call(&server, reqwest::Method::GET, "/account/sessions", Some(&a.access)).await;
    assert_eq!(refused(gone, 401).await["error"], "invalid_token", "the caller's own token died too");
    assert_refreshes(&server, &bob.refresh).await;

    let again = sign_in(&server, "alice").await;
    assert_eq!(sids(&get_ok(&server, "/account/sessions", &again.access).await), vec![again.sid.clone()]);
    assert_refreshes(&server, &again.refresh).await;
}

#[tokio::test]
async fn the_account_api_needs_a_user() {
    let server = Server::start(&config(), &[]);
    let service = service_token(&server).await;
    let resp = call(&server, reqwest::Method::GET, "/account/sessions", Some(&service)).await;
    let body = refused(resp, 403).await;
    assert_eq!(body["message"], "the account API needs a user's token");
    refused(call(&server, reqwest::Method::DELETE, "/account/sessions", Some(&service)).await, 403).await;
    let none = call(&server, reqwest::Method::GET, "/account/sessions", None).await;
    assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"tenure\"");
    refused(none, 401).await;
}

#[tokio::test]
async fn admins_list_and_revoke_other_users_sessions() {
    let server = Server::start(&config(), &[]);
    let first = sign_in(&server, "alice").await;
    let second = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let carol = admin_token(&server, "carol").await;

    let listing = get_ok(&server, "/admin/users/alice/sessions", &carol).await;
    assert_eq!(listing["username"], "alice");
    assert_eq!(sids(&listing), vec![second.sid.clone(), first.sid.clone()]);
    assert!(listing["sessions"].as_array().unwrap().iter().all(|s| s["current"] == false));
    let own = get_ok(&server, "/admin/users/carol/sessions", &carol).await;
    assert_eq!(own["sessions"][0]["current"], true);
    let unknown = call(&server, reqwest::Method::GET, "/admin/users/nobody/sessions", Some(&carol)).await;
    assert_eq!(refused(unknown, 404).await["error"], "not_found");

    // One session.
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", first.sid), &carol).await, 204);
    assert_refresh_refused(&server, &first.refresh).await;
    assert_eq!(userinfo_status(&server, &first.access).await, 401);
    let second_refresh = assert_refreshes(&server, &second.refresh).await;
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", "f".repeat(32)), &carol).await, 404);
    assert_eq!(delete(&server, "/admin/sessions/nonsense", &carol).await, 404);

    // A service account with users:edit may too.
    let service = service_token(&server).await;
    assert_eq!(sids(&get_ok(&server, "/admin/users/alice/sessions", &service).await).len(), 1);

    // Every session of a user: their refresh tokens fail, others are spared.
    let third = sign_in(&server, "alice").await;
    assert_eq!(delete(&server, "/admin/users/alice/sessions", &service).await, 204);
    assert_refresh_refused(&server, &third.refresh).await;
    assert_refresh_refused(&server, &second_refresh).await;
    assert_eq!(userinfo_status(&server, &third.access).await, 401);
    assert_refreshes(&server, &bob.refresh).await;
    assert_eq!(sids(&get_ok(&server, "/admin/users/alice/sessions", &carol).await), Vec::<String>::new());
    assert_eq!(delete(&server, "/admin/users/nobody/sessions", &carol).await, 404);

    // The marker covers the sessions that existed, not later sign-ins.
    let fresh = sign_in(&server, "alice").await;
    assert_refreshes(&server, &fresh.refresh).await;
    assert_eq!(sids(&get_ok(&server, "/admin/users/alice/sessions", &carol).await), vec![fresh.sid.clone()]);
}

#[tokio::test]
async fn the_admin_api_refuses_without_a_valid_token_or_the_permission() {
    let server = Server::start(&config(), &[]);
    let alice = sign_in(&server, "alice").await;
    let alice_admin_scope = sign_in_as(&server, "alice", "openid admin", "x", false).await;
    assert!(claims(&alice_admin_scope.access).get("permissions").is_none(), "alice holds no permission");
    let carol = admin_token(&server, "carol").await;
    let plain_service = server.cc_token().await;
    let sid_path = format!("/admin/sessions/{}", alice.sid);
    let admin_calls = [
        (reqwest::Method::GET, "/admin/users/alice/sessions"),
        (reqwest::Method::DELETE, "/admin/users/alice/sessions"),
        (reqwest::Method::DELETE, sid_path.as_str()),
        (reqwest::Method::GET, "/admin/audit"),
    ];
    for (method, path) in &admin_calls {
        let none = call(&server, method.clone(), path, None).await;
        assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"tenure\"", "{method} {path}");
        refused(none, 401).await;
        let garbage = call(&server, method.clone(), path, Some("not.a.token")).await;
        assert!(garbage.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
        assert_eq!(refused(garbage, 401).await["error"], "invalid_token");
        for token in [&alice.access, &alice_admin_scope.access, &plain_service] {
            let body = refused(call(&server, method.clone(), path, Some(token)).await, 403).await;
            assert_eq!(body["error"], "forbidden", "{method} {path}");
        }
    }
    // users:edit is not system:administer; it reads the audit log (SPEC 9).
    let body = refused(call(&server, reqwest::Method::GET, "/admin/settings/session", Some(&carol)).await, 403).await;
    assert!(body["message"].as_str().unwrap().contains("system:administer"), "{body}");
    assert_eq!(call(&server, reqwest::Method::GET, "/admin/audit", Some(&carol)).await.status(), 200);
    // The permission is checked before the user is looked up: nothing leaks.
    let unknown = call(&server, reqwest::Method::GET, "/admin/users/nobody/sessions", Some(&alice.access)).await;
    refused(unknown, 403).await;
    // Nothing was revoked by the refused calls.
    assert_refreshes(&server, &alice.refresh).await;
}

#[tokio::test]
async fn the_audit_log_shows_revocations_newest_first_in_pages() {
    let server = Server::start(&config(), &[]);
    let a1 = sign_in(&server, "alice").await;
    let a2 = sign_in(&server, "alice").await;
    sign_in(&server, "bob").await;
    let carol = admin_token(&server, "carol").await;
    let root = admin_token(&server, "root").await;
    let service = service_token(&server).await;

    assert_eq!(delete(&server, &format!("/account/sessions/{}", a1.sid), &a2.access).await, 204);
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", a2.sid), &carol).await, 204);
    assert_eq!(delete(&server, "/admin/users/bob/sessions", &service).await, 204);

    // Page through everything, two at a time.
    let mut events = Vec::new();
    let mut path = "/admin/audit?limit=2".to_owned();
    loop {
        let page = get_ok(&server, &path, &root).await;
        let batch = page["events"].as_array().unwrap();
        assert!(batch.len() <= 2);
        events.extend(batch.iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/admin/audit?limit=2&before={next}"),
            None => break,
        }
    }
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {ids:?}");
    let revocations: Vec<&Value> = events
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("session_revoked" | "user_sessions_revoked")))
        .collect();
    let summary: Vec<(&str, &str, &str, &str)> = revocations
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    let a1_target = format!("session:{}", a1.sid);
    let a2_target = format!("session:{}", a2.sid);
    assert_eq!(
        summary,
        vec![
            ("user_sessions_revoked", "client:automation", "user:bob", "admin_revoked"),
            ("session_revoked", "carol", a2_target.as_str(), "admin_revoked"),
            ("session_revoked", "alice", a1_target.as_str(), "user_revoked"),
        ]
    );
    assert_eq!(revocations[1]["details"]["sub"], "alice");
    for e in &revocations {
        time(&e["at"]);
    }

    // The first page of one, and where it continues.
    let one = get_ok(&server, "/admin/audit?limit=1", &root).await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["next"], one["events"][0]["id"]);
    // Past the oldest event: an empty last page.
    let last = ids.last().unwrap();
    let empty = get_ok(&server, &format!("/admin/audit?before={last}"), &root).await;
    assert_eq!(empty, serde_json::json!({"events": [], "next": null}));

    for (query, name) in [("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"), ("before=x", "before")] {
        let resp = call(&server, reqwest::Method::GET, &format!("/admin/audit?{query}"), Some(&root)).await;
        let body = refused(resp, 400).await;
        assert!(body["message"].as_str().unwrap().starts_with(name), "{query}: {body}");
    }
}

/// The helpdesk rule (only `system:administer` changes a user who holds
/// permissions) protects that user's sessions too: a `users:edit` caller
/// cannot sign an administrator out, by sid or all at once; administrators
/// still can, and everyone still ends their own.
#[tokio::test]
async fn users_edit_cannot_sign_out_a_user_who_holds_permissions() {
    let server = Server::start(&config(), &[]);
    let root = sign_in(&server, "root").await;
    let alice = sign_in(&server, "alice").await;
    let carol = admin_token(&server, "carol").await;
    let service = service_token(&server).await;

    let by_sid = format!("/admin/sessions/{}", root.sid);
    for token in [&carol, &service] {
        for path in [by_sid.as_str(), "/admin/users/root/sessions"] {
            let body = refused(call(&server, reqwest::Method::DELETE, path, Some(token)).await, 403).await;
            assert_eq!(body["error"], "forbidden", "{path}");
            assert_eq!(
                body["message"],
                "user \"root\" holds permissions; revoking their sessions needs the system:administer permission",
                "{path}"
            );
        }
    }
    assert_refreshes(&server, &root.refresh).await;
    // Listing stays open to users:edit; a user without permissions is fair game.
    assert_eq!(sids(&get_ok(&server, "/admin/users/root/sessions", &carol).await), vec![root.sid.clone()]);
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", alice.sid), &carol).await, 204);

    // carol holds users:edit herself: another helpdesk cannot sign her out,
    // but she may end her own sessions.
    let carol_other = sign_in(&server, "carol").await;
    let resp = call(&server, reqwest::Method::DELETE, "/admin/users/carol/sessions", Some(&service)).await;
    refused(resp, 403).await;
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", carol_other.sid), &carol).await, 204);
    assert_refresh_refused(&server, &carol_other.refresh).await;

    // system:administer may, by sid and all at once.
    let root_admin = admin_token(&server, "root").await;
    let second_carol = sign_in(&server, "carol").await;
    assert_eq!(delete(&server, &format!("/admin/sessions/{}", second_carol.sid), &root_admin).await, 204);
    assert_refresh_refused(&server, &second_carol.refresh).await;
    assert_eq!(delete(&server, "/admin/users/carol/sessions", &root_admin).await, 204);
    // And root still ends their own sessions through the account API.
    assert_eq!(delete(&server, &format!("/account/sessions/{}", root.sid), &root_admin).await, 204);
    assert_refresh_refused(&server, &root.refresh).await;
}
