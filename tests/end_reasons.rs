//! Why a session ended (SPEC 14) end to end: every refresh refused because
//! its session (or refresh-token family) ended answers `invalid_grant` with
//! `session_end_reason` and a sentence an app can show; introspection of the
//! dead token still says only `{"active": false}`; the account and admin
//! listings show the ended sessions of the last 30 days (`ended`,
//! `ended_at`: for a timeout the deadline, `end_reason`); the audit events
//! of an ending carry `end_reason`. Timeouts run on the manual clock
//! (tests/support/manual.rs); the rest against the real binary, on sled
//! here and on PostgreSQL in `postgres.rs`; a deleted client's families are
//! audited as `client_deleted`. (`credentials_changed` and
//! `session_limit` are the password and session-limit flows' own; their
//! mapping is a unit test of `session::end`.)

use serde_json::{Value, json};

use crate::support::kit::{self, ROOT_AUTOMATION, Tokens, WEB_REDIRECT, call, root_token, user, web_client};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

pub fn config() -> String {
    config_with(&format!(
        "{ROOT_AUTOMATION}{}{}{}",
        web_client(&["openid", "profile", "admin"]),
        user("alice", &[]),
        user("bob", &[])
    ))
}

async fn sign_in(server: &Server, user: &str) -> Tokens {
    kit::sign_in(server, user, &format!("{user}-password"), "openid").await
}

async fn refresh(server: &Server, token: &str) -> reqwest::Response {
    kit::refresh(server, ("web", "web-secret"), token).await
}

/// Refresh successfully; the successor.
async fn refreshed(server: &Server, token: &str) -> String {
    let resp = refresh(server, token).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned()
}

/// A refresh refused because the session ended for `reason`: the body.
async fn ended(server: &Server, token: &str, reason: &str) -> Value {
    let resp = refresh(server, token).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert_eq!(body["session_end_reason"], reason, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| d.starts_with("the session")), "{body}");
    body
}

/// What `/introspect` says of `token`, asked by `orders-api`.
async fn introspection(server: &Server, token: &str) -> Value {
    let resp = server.post_form("/introspect", Some(("orders-api", "orders-secret")), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn get(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = call(server, "GET", path, Some(token), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The listed session `sid` in `listing`.
fn listed<'a>(listing: &'a Value, sid: &str) -> &'a Value {
    let sessions = listing["sessions"].as_array().unwrap();
    sessions.iter().find(|s| s["sid"] == sid).unwrap_or_else(|| panic!("{sid} is listed: {listing}"))
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v} is a time"))).unwrap()
}

/// In process on a manual clock: the idle timeout, named with its deadline.
#[tokio::test]
async fn an_idle_session_says_so_and_ends_at_its_deadline() {
    let server = ManualServer::start(&config(), &[("TENURE_SESSION_IDLE_TIMEOUT", "60s")]).await;
    let tokens = sign_in(&server, "alice").await;
    let sid = tokens.sid();
    server.advance(59);
    let token = refreshed(&server, &tokens.refresh()).await;
    server.advance(60);
    let body = ended(&server, &token, "idle_timeout").await;
    assert_eq!(body["error_description"], "the session ended after 1 minute of inactivity");
    assert_eq!(introspection(&server, &token).await, json!({ "active": false }), "introspection says no more");
    // Noticed much later, it still ended at the deadline.
    server.advance(3600);
    ended(&server, &token, "idle_timeout").await;
    let fresh = sign_in(&server, "alice").await;
    let listing = get(&server, "/account/sessions", &fresh.access()).await;
    assert_eq!(listing["sessions"][0]["sid"], fresh.sid(), "the live ones first");
    assert_eq!(listing["sessions"][0]["ended"], false);
    let old = listed(&listing, &sid);
    assert_eq!((old["ended"].clone(), old["end_reason"].clone()), (json!(true), json!("idle_timeout")), "{old}");
    assert_eq!((time(&old["ended_at"]) - time(&old["last_active_at"])).num_seconds(), 60, "{old}");
    assert_eq!(old["end_summary"], "idle for 1 min");
}

/// In process on a manual clock: the maximum lifetime, however active.
#[tokio::test]
async fn a_session_past_its_maximum_lifetime_says_so() {
    let env = [("TENURE_SESSION_IDLE_TIMEOUT", "60s"), ("TENURE_SESSION_MAX_LIFETIME", "150s")];
    let server = ManualServer::start(&config(), &env).await;
    let tokens = sign_in(&server, "alice").await;
    let sid = tokens.sid();
    let mut token = tokens.refresh();
    for _ in 0..2 {
        server.advance(50);
        token = refreshed(&server, &token).await;
    }
    server.advance(50);
    let body = ended(&server, &token, "max_lifetime").await;
    assert_eq!(body["error_description"], "the session reached its maximum lifetime of 2 minutes 30 seconds");
    assert_eq!(introspection(&server, &token).await, json!({ "active": false }));
    let fresh = sign_in(&server, "alice").await;
    let old = get(&server, "/account/sessions", &fresh.access()).await;
    let old = listed(&old, &sid);
    assert_eq!(old["end_reason"], "max_lifetime", "{old}");
    assert_eq!((time(&old["ended_at"]) - time(&old["created_at"])).num_seconds(), 150, "{old}");
}

/// The real binary on sled.
#[tokio::test]
async fn every_ending_through_the_api_is_named() {
    let server = Server::start(&config(), &[]);
    endings_are_named_and_listed(&server).await;
}

/// Signed out, revoked by an administrator, a reused refresh token and a
/// disabled user: each refusal names its reason, the listings show them,
/// the audit events carry `end_reason`. Shared with the PostgreSQL test.
pub async fn endings_are_named_and_listed(server: &Server) {
    let root = root_token(server).await;
    let watcher = sign_in(server, "bob").await;

    // The user signs one of their sessions out.
    let (phone, laptop) = (sign_in(server, "alice").await, sign_in(server, "alice").await);
    let (status, _) =
        call(server, "DELETE", &format!("/account/sessions/{}", phone.sid()), Some(&laptop.access()), None).await;
    assert_eq!(status, 204);
    let body = ended(server, &phone.refresh(), "signed_out").await;
    assert_eq!(body["error_description"], "the session ended because the user signed out");
    assert_eq!(introspection(server, &phone.refresh()).await, json!({ "active": false }));

    // An administrator revokes one.
    let (status, _) = call(server, "DELETE", &format!("/admin/sessions/{}", laptop.sid()), Some(&root), None).await;
    assert_eq!(status, 204);
    let body = ended(server, &laptop.refresh(), "revoked").await;
    assert_eq!(body["error_description"], "the session was revoked");

    // A spent refresh token presented again: the family dies.
    let tablet = sign_in(server, "alice").await;
    let spent = tablet.refresh();
    let next = refreshed(server, &spent).await;
    let body = ended(server, &spent, "reuse_detected").await;
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    ended(server, &next, "reuse_detected").await;

    // A disabled (stored) user.
    let dave = json!({ "username": "dave", "password": "dave-password" });
    let (status, body) = call(server, "POST", "/admin/users", Some(&root), Some(dave)).await;
    assert!((200..300).contains(&status), "{body}");
    let daves = sign_in(server, "dave").await;
    let (status, body) =
        call(server, "PATCH", "/admin/users/dave", Some(&root), Some(json!({ "disabled": true }))).await;
    assert_eq!(status, 200, "{body}");
    let body = ended(server, &daves.refresh(), "user_disabled").await;
    assert_eq!(body["error_description"], "the session ended because the account was disabled");
    assert_eq!(introspection(server, &daves.refresh()).await, json!({ "active": false }));

    // A deleted client: its families end with it (its refresh tokens then
    // fail client authentication first, so the audit event says why).
    let app = json!({
        "id": "reports-app",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [WEB_REDIRECT],
    });
    let (status, body) = call(server, "POST", "/admin/clients", Some(&root), Some(app)).await;
    assert_eq!(status, 201, "{body}");
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let client = ("reports-app", secret.as_str());
    kit::sign_in_without_pkce(server, client, "bob", "bob-password", "openid", false).await.refresh();
    assert_eq!(call(server, "DELETE", "/admin/clients/reports-app", Some(&root), None).await.0, 204);

    // The admin listing: the live one first, then the ended ones, the
    // latest end first, each with why and when.
    let listing = get(server, "/admin/users/alice/sessions", &root).await;
    let sessions = listing["sessions"].as_array().unwrap();
    let order: Vec<(&str, bool)> =
        sessions.iter().map(|s| (s["sid"].as_str().unwrap(), s["ended"].as_bool().unwrap())).collect();
    let tablet_sid = tablet.sid();
    assert_eq!(order[0], (tablet_sid.as_str(), false), "a reuse ends the family, not the session: {listing}");
    assert_eq!(order.len(), 3, "{listing}");
    let phone_sid = phone.sid();
    let laptop_sid = laptop.sid();
    let mut ended_sids = vec![order[1].0, order[2].0];
    ended_sids.sort_unstable();
    let mut expected = vec![phone_sid.as_str(), laptop_sid.as_str()];
    expected.sort_unstable();
    assert_eq!(ended_sids, expected);
    assert!(time(&sessions[1]["ended_at"]) >= time(&sessions[2]["ended_at"]), "the latest end first: {listing}");
    let by_admin = listed(&listing, &laptop_sid);
    assert_eq!(by_admin["end_reason"], "revoked");
    assert_eq!(by_admin["ended_by"], "client:root-automation", "{by_admin}");
    assert_eq!(by_admin["end_summary"], "revoked by root-automation");
    let by_user = listed(&listing, &phone_sid);
    assert_eq!((by_user["end_reason"].clone(), by_user["ended_by"].clone()), (json!("signed_out"), json!("alice")));
    assert_eq!(by_user["end_summary"], "signed out");
    // The user sees the same in their own listing (from a new sign-in: the
    // tablet's tokens died with its family).
    let own = get(server, "/account/sessions", &sign_in(server, "alice").await.access()).await;
    assert_eq!(listed(&own, &phone_sid)["end_reason"], "signed_out");
    let dave_listing = get(server, "/admin/users/dave/sessions", &root).await;
    assert_eq!(listed(&dave_listing, &daves.sid())["end_reason"], "user_disabled");

    // The audit events of the endings carry the SPEC code beside the stored words.
    let audit = get(server, "/admin/audit?limit=100", &root).await;
    let events = audit["events"].as_array().unwrap();
    let event = |target: &str| {
        events.iter().find(|e| e["target"] == target).unwrap_or_else(|| panic!("an event for {target}: {audit}"))
    };
    let phone_event = event(&format!("session:{phone_sid}"));
    assert_eq!(
        (phone_event["reason"].clone(), phone_event["end_reason"].clone()),
        (json!("user_revoked"), json!("signed_out"))
    );
    assert_eq!(event(&format!("session:{laptop_sid}"))["end_reason"], "revoked");
    assert!(
        events.iter().any(|e| e["kind"] == "refresh_token_reuse" && e["end_reason"] == "reuse_detected"),
        "{audit}"
    );
    assert!(events.iter().any(|e| e["kind"] == "user_disabled" && e["end_reason"] == "user_disabled"), "{audit}");
    let deleted = |e: &&Value| e["kind"] == "family_revoked" && e["reason"] == "client_deleted";
    assert_eq!(events.iter().find(deleted).map(|e| e["end_reason"].clone()), Some(json!("client_deleted")), "{audit}");
    // Others live on.
    refreshed(server, &watcher.refresh()).await;
}
