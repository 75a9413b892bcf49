//! The revocation feed (SPEC 13): tenure as an OpenID Shared Signals
//! Framework transmitter. Receivers poll (RFC 8936) or are pushed to
//! (RFC 8935) CAEP `session-revoked` Security Event Tokens, verified here
//! with `jsonwebtoken` against the published JWKS.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::support::kit::{
    OPS, WEB, WEB_REDIRECT, call, cc_token, claims, code_without_pkce, sign_in_without_pkce, user, web_client,
};
use crate::support::{Server, config_with, eventually};

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const POLL: &str = "urn:ietf:rfc:8936";
const PUSH: &str = "urn:ietf:rfc:8935";

/// The test receivers listen on 127.0.0.1: this configuration allows
/// push delivery to loopback addresses.
pub(crate) fn config() -> String {
    strict_config() + "\n[feed]\nallowed_private_networks = [\"127.0.0.0/8\", \"::1\"]\n"
}

/// Push delivery to public addresses only (the default).
fn strict_config() -> String {
    config_with(&format!(
        r#"{}
[[clients]]
id = "rs"
secret = "rs-secret"
grant_types = ["client_credentials"]
scopes = ["ssf.manage", "ssf.read"]

[[clients]]
id = "reader"
secret = "reader-secret"
grant_types = ["client_credentials"]
scopes = ["ssf.read"]
{OPS}{}"#,
        web_client(&["openid"]),
        user("alice", &[])
    ))
}

/// Sign alice in to `web`: its token response.
pub(crate) async fn sign_in(server: &Server) -> Value {
    sign_in_without_pkce(server, WEB, "alice", "alice-password", "openid", false).await.body
}

/// The claims of the access token (read, not verified: it is ours).
fn claims_of(tokens: &Value) -> Value {
    claims(tokens["access_token"].as_str().unwrap())
}

pub(crate) fn sid_of(tokens: &Value) -> String {
    claims_of(tokens)["sid"].as_str().unwrap().to_owned()
}

async fn poll(server: &Server, token: &str, body: Value) -> Value {
    let (status, answer) = call(server, "POST", "/ssf/poll", Some(token), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Verify a SET as a receiver would: RS256 from the JWKS by `kid`,
/// `typ: secevent+jwt`, `iss`, `aud`; SETs carry no `exp` (RFC 8417 2.2).
pub(crate) fn verify_set(token: &str, jwks: &JwkSet, issuer: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(header.alg, Algorithm::RS256, "the CAEP interoperability profile signs SETs with RS256");
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the SET's kid is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iat", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    assert!(data.claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    data.claims
}

/// The one SET a poll returned, verified.
async fn one_set(server: &Server, answer: &Value, audience: &str) -> (String, Value) {
    let sets = answer["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{answer}");
    let (jti, token) = sets.iter().next().unwrap();
    let claims = verify_set(token.as_str().unwrap(), &server.jwks().await, &server.base, audience);
    assert_eq!(claims["jti"], jti.as_str());
    (jti.clone(), claims)
}

async fn poll_stream(server: &Server, rs: &str) -> String {
    let (status, stream) = call(
        server,
        "POST",
        "/ssf/stream",
        Some(rs),
        Some(json!({ "delivery": { "method": POLL }, "events_requested": [SESSION_REVOKED] })),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    assert_eq!(stream["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(stream["delivery"]["endpoint_url"], server.url("/ssf/poll"));
    stream["stream_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_transmitter_metadata_names_every_endpoint() {
    let server = Server::start(&config(), &[]);
    let meta = server.get_json("/.well-known/ssf-configuration").await;
    assert_eq!(meta["issuer"], server.base);
    assert_eq!(meta["jwks_uri"], server.url("/jwks.json"));
    assert_eq!(meta["configuration_endpoint"], server.url("/ssf/stream"));
    assert_eq!(meta["status_endpoint"], server.url("/ssf/status"));
    assert_eq!(meta["verification_endpoint"], server.url("/ssf/verify"));
    assert_eq!(meta["delivery_methods_supported"], json!([PUSH, POLL]));
    assert_eq!(meta["authorization_schemes"], json!([{ "spec_urn": "urn:ietf:rfc:6749" }]));
}

#[tokio::test]
async fn a_polling_receiver_gets_a_verified_set_for_each_level_of_revocation() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    poll_stream(&server, &rs).await;

    // A family, revoked by its client (RFC 7009).
    let tokens = sign_in(&server).await;
    let sid = sid_of(&tokens);
    let before = claims_of(&tokens)["iat"].as_u64().unwrap();
    let resp = server
        .post_form("/revoke", Some(("web", "web-secret")), &[("token", tokens["refresh_token"].as_str().unwrap())])
        .await;
    assert_eq!(resp.status(), 200);
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!(answer["moreAvailable"], false);
    let (jti, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["sub_id"]["format"], "complex");
    assert_eq!(set["sub_id"]["user"], json!({ "format": "iss_sub", "iss": server.base, "sub": "alice" }));
    assert_eq!(set["sub_id"]["session"], json!({ "format": "opaque", "id": sid }));
    assert_eq!(set["sub_id"]["application"], json!({ "format": "opaque", "id": "web" }));
    let event = &set["events"][SESSION_REVOKED];
    assert!(event["event_timestamp"].as_u64().is_some_and(|t| t >= before && Some(t) <= set["iat"].as_u64()), "{set}");
    assert!(event["reason_admin"]["en"].as_str().is_some_and(|r| r.contains("client revoked")), "{set}");

    // Not acknowledged: the same SET again. Acknowledged: gone.
    let again = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!(again["sets"].as_object().unwrap().keys().collect::<Vec<_>>(), vec![&jti]);
    let empty = poll(&server, &rs, json!({ "ack": [jti], "returnImmediately": true })).await;
    assert_eq!(empty, json!({ "sets": {}, "moreAvailable": false }));

    // A session, revoked by an administrator.
    let tokens = sign_in(&server).await;
    let sid = sid_of(&tokens);
    let (status, _) = call(&server, "DELETE", &format!("/admin/sessions/{sid}"), Some(&admin), None).await;
    assert_eq!(status, 204);
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let (jti, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["sub_id"]["session"]["id"], sid.as_str());
    assert!(set["sub_id"].get("application").is_none(), "the whole session: {set}");
    assert_eq!(set["events"][SESSION_REVOKED]["initiating_entity"], "admin");
    assert_eq!(set["events"][SESSION_REVOKED]["reason_admin"]["en"], "an administrator revoked it");

    // Every session of a user: iss_sub alone. The poll acknowledges the last one.
    sign_in(&server).await;
    let (status, _) = call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    assert_eq!(status, 204);
    let answer = poll(&server, &rs, json!({ "ack": [jti], "returnImmediately": true })).await;
    let (jti, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["sub_id"], json!({ "format": "iss_sub", "iss": server.base, "sub": "alice" }));
    assert!(set["events"][SESSION_REVOKED]["reason_admin"]["en"].is_string());

    // A stored user deleted through the admin API: their sessions go too.
    let (status, _) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&admin),
        Some(json!({ "username": "bob", "password": "bob-password" })),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(call(&server, "DELETE", "/admin/users/bob", Some(&admin), None).await.0, 204);
    let answer = poll(&server, &rs, json!({ "ack": [jti], "returnImmediately": true })).await;
    let (_, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["sub_id"]["sub"], "bob");
    assert!(set["events"][SESSION_REVOKED]["reason_admin"]["en"].as_str().is_some_and(|r| r.contains("deleted")));
}

/// SPEC 14: a user's own password change ends their other sessions and
/// keeps the current one. The feed names each ended session, and never the
/// whole user: a receiver that ends everything of a user on a user-level
/// event would end the session that stays.
#[tokio::test]
async fn a_password_change_names_each_ended_session_and_not_the_one_that_stays() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    poll_stream(&server, &rs).await;
    let body = json!({ "username": "bob", "password": "bob-password" });
    assert_eq!(call(&server, "POST", "/admin/users", Some(&admin), Some(body)).await.0, 201);
    let bob = || sign_in_without_pkce(&server, WEB, "bob", "bob-password", "openid", false);
    let current = bob().await.body;
    let (first, second) = (sid_of(&bob().await.body), sid_of(&bob().await.body));

    let change = json!({ "current_password": "bob-password", "new_password": "bob-new-password" });
    let token = current["access_token"].as_str().unwrap();
    let (status, answer) = call(&server, "POST", "/account/password", Some(token), Some(change)).await;
    assert_eq!(status, 204, "{answer}");

    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let sets = answer["sets"].as_object().unwrap();
    let jwks = server.jwks().await;
    let mut named: Vec<String> = sets
        .values()
        .map(|token| {
            let set = verify_set(token.as_str().unwrap(), &jwks, &server.base, "rs");
            assert_eq!(set["sub_id"]["user"]["sub"], "bob", "a session of bob, never the whole user: {set}");
            assert!(set["sub_id"].get("application").is_none(), "the whole session: {set}");
            set["sub_id"]["session"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    named.sort();
    let mut ended = vec![first, second];
    ended.sort();
    assert_eq!(named, ended, "one event per ended session, none for the current one ({})", sid_of(&current));
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_revocation_happens_and_max_events_pages() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    poll_stream(&server, &rs).await;
    let waiting = {
        let (http, url, rs) = (server.http.clone(), server.url("/ssf/poll"), rs.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer: Value =
                http.post(url).bearer_auth(rs).json(&json!({})).send().await.unwrap().json().await.unwrap();
            (answer, started.elapsed())
        })
    };
    // sleep: the long poll waiting on the server cannot be observed from outside
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    assert_eq!(status, 204);
    let (answer, took) = waiting.await.unwrap();
    assert_eq!(answer["sets"].as_object().unwrap().len(), 1, "{answer}");
    assert!(took < Duration::from_secs(5), "the waiting poll answered within {took:?}");

    call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    let page = poll(&server, &rs, json!({ "maxEvents": 1, "returnImmediately": true })).await;
    assert_eq!((page["sets"].as_object().unwrap().len(), page["moreAvailable"].as_bool()), (1, Some(true)));
    let all = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!((all["sets"].as_object().unwrap().len(), all["moreAvailable"].as_bool()), (2, Some(false)));
    let (status, body) = call(&server, "POST", "/ssf/poll", Some(&rs), Some(json!({ "maxEvent": 1 }))).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("maxEvent"), "{body}");
}

#[tokio::test]
async fn the_ssf_scopes_are_enforced() {
    let server = Server::start(&config(), &[]);
    let reader = cc_token(&server, "reader", "reader-secret").await;
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let none = server.cc_token().await;
    let create = json!({ "delivery": { "method": POLL }, "events_requested": [SESSION_REVOKED] });

    assert_eq!(call(&server, "POST", "/ssf/stream", None, Some(create.clone())).await.0, 401);
    let (status, body) = call(&server, "POST", "/ssf/stream", Some(&reader), Some(create.clone())).await;
    assert_eq!(status, 403, "ssf.read cannot configure");
    assert!(body["message"].as_str().unwrap().contains("ssf.manage"), "{body}");
    for (method, path) in [("GET", "/ssf/stream"), ("POST", "/ssf/poll"), ("GET", "/ssf/status")] {
        let (status, _) = call(&server, method, path, Some(&none), Some(json!({}))).await;
        assert_eq!(status, 403, "{method} {path} without an ssf scope");
    }
    // A token narrowed to ssf.read cannot configure either.
    let resp = server
        .post_form("/token", Some(("rs", "rs-secret")), &[("grant_type", "client_credentials"), ("scope", "ssf.read")])
        .await;
    let narrowed: Value = resp.json().await.unwrap();
    let narrowed = narrowed["access_token"].as_str().unwrap();
    assert_eq!(call(&server, "POST", "/ssf/stream", Some(narrowed), Some(create.clone())).await.0, 403);

    let stream_id = poll_stream(&server, &rs).await;
    let (status, body) = call(&server, "POST", "/ssf/stream", Some(&rs), Some(create)).await;
    assert_eq!(status, 409, "one stream per receiving client: {body}");
    let (status, list) = call(&server, "GET", "/ssf/stream", Some(narrowed), None).await;
    assert_eq!((status, list[0]["stream_id"].as_str()), (200, Some(stream_id.as_str())));
    let (status, _) = call(&server, "GET", &format!("/ssf/stream?stream_id={stream_id}"), Some(narrowed), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&server, "POST", "/ssf/poll", Some(narrowed), Some(json!({"returnImmediately": true}))).await.0,
        200
    );
    // The reader has no stream of its own, and cannot see another's.
    let (status, _) = call(&server, "GET", &format!("/ssf/stream?stream_id={stream_id}"), Some(&reader), None).await;
    assert_eq!(status, 404);
    // A user's token is not a receiver's.
    let user = sign_in(&server).await;
    let (status, _) = call(&server, "GET", "/ssf/stream", user["access_token"].as_str(), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn streams_are_configured_paused_and_deleted() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    let (status, body) =
        call(&server, "POST", "/ssf/stream", Some(&rs), Some(json!({ "delivery": { "method": PUSH } }))).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "delivery.endpoint_url: is required for push delivery");
    let id = poll_stream(&server, &rs).await;

    let (status, patched) =
        call(&server, "PATCH", "/ssf/stream", Some(&rs), Some(json!({ "stream_id": id, "description": "orders RS" })))
            .await;
    assert_eq!((status, patched["description"].as_str()), (200, Some("orders RS")));
    assert_eq!(patched["events_requested"], json!([SESSION_REVOKED]), "PATCH keeps what it does not name");
    let (status, _) =
        call(&server, "PATCH", "/ssf/stream", Some(&rs), Some(json!({ "stream_id": "other", "description": "x" })))
            .await;
    assert_eq!(status, 404);

    // Paused: events are held, and come once the stream is enabled again.
    let (status, st) =
        call(&server, "POST", "/ssf/status", Some(&rs), Some(json!({ "stream_id": id, "status": "paused" }))).await;
    assert_eq!((status, st["status"].as_str()), (200, Some("paused")));
    call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    let held = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!(held["sets"], json!({}));
    call(&server, "POST", "/ssf/status", Some(&rs), Some(json!({ "stream_id": id, "status": "enabled" }))).await;
    let (_, st) = call(&server, "GET", &format!("/ssf/status?stream_id={id}"), Some(&rs), None).await;
    assert_eq!(st, json!({ "stream_id": id, "status": "enabled" }));
    let released = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!(released["sets"].as_object().unwrap().len(), 1);

    // Disabled: what was queued is dropped and nothing is queued.
    call(&server, "POST", "/ssf/status", Some(&rs), Some(json!({ "stream_id": id, "status": "disabled" }))).await;
    call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    call(&server, "POST", "/ssf/status", Some(&rs), Some(json!({ "stream_id": id, "status": "enabled" }))).await;
    assert_eq!(poll(&server, &rs, json!({ "returnImmediately": true })).await["sets"], json!({}));
    let (status, body) =
        call(&server, "POST", "/ssf/status", Some(&rs), Some(json!({ "stream_id": id, "status": "off" }))).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("status:"), "{body}");

    assert_eq!(call(&server, "DELETE", &format!("/ssf/stream?stream_id={id}"), Some(&rs), None).await.0, 204);
    assert_eq!(call(&server, "GET", &format!("/ssf/stream?stream_id={id}"), Some(&rs), None).await.0, 404);
    let (status, _) = call(&server, "POST", "/ssf/poll", Some(&rs), Some(json!({ "returnImmediately": true }))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_verification_event_echoes_the_receivers_state() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let id = poll_stream(&server, &rs).await;
    let (status, _) =
        call(&server, "POST", "/ssf/verify", Some(&rs), Some(json!({ "stream_id": id, "state": "VGVzdA" }))).await;
    assert_eq!(status, 204);
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let (_, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["events"][VERIFICATION], json!({ "state": "VGVzdA" }));
    assert_eq!(set["sub_id"], json!({ "format": "opaque", "id": id }));
    let (status, _) = call(&server, "POST", "/ssf/verify", Some(&rs), Some(json!({ "stream_id": "nope" }))).await;
    assert_eq!(status, 404);
    let reader = cc_token(&server, "reader", "reader-secret").await;
    assert_eq!(call(&server, "POST", "/ssf/verify", Some(&reader), Some(json!({ "stream_id": id }))).await.0, 403);
}

/// What the receiver answered, and the request's content type,
/// authorization header and body.
type Received = (u16, String, String, String);

/// A push receiver on a loopback port: answers each request with the next
/// status of `statuses` (then `then`), and records what it got.
#[derive(Clone, Default)]
struct Receiver {
    statuses: Arc<Mutex<Vec<u16>>>,
    then: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>, then: u16) -> (Receiver, String) {
        use axum::http::HeaderMap;
        let receiver = Receiver {
            statuses: Arc::new(Mutex::new(statuses)),
            then: Arc::new(AtomicU16::new(then)),
            ..Receiver::default()
        };
        let r = receiver.clone();
        let handler = move |headers: HeaderMap, body: String| {
            let r = r.clone();
            async move {
                let status = {
                    let mut s = r.statuses.lock().unwrap();
                    if s.is_empty() { r.then.load(Ordering::SeqCst) } else { s.remove(0) }
                };
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                r.got.lock().unwrap().push((status, header("content-type"), header("authorization"), body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/events", axum::routing::post(handler));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, url)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

pub(crate) async fn push_stream(server: &Server, rs: &str, url: &str) {
    let (status, stream) = call(
        server,
        "POST",
        "/ssf/stream",
        Some(rs),
        Some(json!({
            "delivery": { "method": PUSH, "endpoint_url": url, "authorization_header": "Bearer receiver-secret" },
            "events_requested": [SESSION_REVOKED],
        })),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    assert_eq!(stream["delivery"], json!({ "method": PUSH, "endpoint_url": url }), "the header is write-only");
}

#[tokio::test]
async fn a_push_receiver_gets_the_set_within_seconds_and_again_after_a_failure() {
    let (receiver, url) = Receiver::start(vec![500], 202).await;
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    push_stream(&server, &rs, &url).await;
    let tokens = sign_in(&server).await;
    let sid = sid_of(&tokens);
    assert_eq!(call(&server, "DELETE", &format!("/admin/sessions/{sid}"), Some(&admin), None).await.0, 204);

    assert!(eventually(Duration::from_secs(4), || async { !receiver.got().is_empty() }).await, "first attempt");
    assert!(
        eventually(Duration::from_secs(15), || async { receiver.got().iter().any(|g| g.0 == 202) }).await,
        "retried after the 500 within seconds: {:?}",
        receiver.got().len()
    );
    let got = receiver.got();
    assert_eq!(got.len(), 2, "one failure, one success");
    let jwks = server.jwks().await;
    let (first, second) = (&got[0], &got[1]);
    for (_, content_type, authorization, _) in [first, second] {
        assert_eq!(content_type, "application/secevent+jwt");
        assert_eq!(authorization, "Bearer receiver-secret");
    }
    let a = verify_set(&first.3, &jwks, &server.base, "rs");
    let b = verify_set(&second.3, &jwks, &server.base, "rs");
    assert_eq!(a["jti"], b["jti"], "the retry sends the same event");
    assert_eq!(b["sub_id"]["session"]["id"], sid.as_str());
    assert!(b["events"][SESSION_REVOKED]["event_timestamp"].is_u64());
    // sleep: an absence (no further delivery) cannot be polled for
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.got().len(), 2, "nothing more once delivered");

    // A SET the receiver refuses with 400 (RFC 8935 2.3) is not retried:
    // the next one follows at once.
    receiver.statuses.lock().unwrap().push(400);
    call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    assert!(eventually(Duration::from_secs(4), || async { receiver.got().len() == 3 }).await);
    call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await;
    assert!(eventually(Duration::from_secs(4), || async { receiver.got().len() == 4 }).await, "not held up");
    let got = receiver.got();
    let (refused, next) =
        (verify_set(&got[2].3, &jwks, &server.base, "rs"), verify_set(&got[3].3, &jwks, &server.base, "rs"));
    assert_eq!((got[2].0, got[3].0), (400, 202));
    assert_ne!(refused["jti"], next["jti"]);
    // sleep: an absence (no retry) cannot be polled for
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.got().len(), 4, "the refused SET is not sent again");

    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"tenure_ssf_sets_total{delivery="push",outcome="delivered"} 2"#,
        r#"tenure_ssf_sets_total{delivery="push",outcome="failed"} 1"#,
        r#"tenure_ssf_sets_total{delivery="push",outcome="rejected"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_queued_push_survives_a_sigkill_and_is_delivered_after_the_restart() {
    let (receiver, url) = Receiver::start(vec![], 503).await;
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    push_stream(&server, &rs, &url).await;
    assert_eq!(call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await.0, 204);
    assert!(eventually(Duration::from_secs(4), || async { !receiver.got().is_empty() }).await, "first attempt");

    let dir = server.kill_keep_dir();
    receiver.then.store(202, Ordering::SeqCst);
    let server = Server::start_in(dir, &config(), &[]);
    assert!(
        eventually(Duration::from_secs(15), || async { receiver.got().iter().any(|g| g.0 == 202) }).await,
        "delivered after the restart"
    );
    let delivered = receiver.got().into_iter().find(|g| g.0 == 202).unwrap();
    let set = verify_set(&delivered.3, &server.jwks().await, &server.base, "rs");
    assert_eq!(set["sub_id"], json!({ "format": "iss_sub", "iss": server.base, "sub": "alice" }));
}

#[tokio::test]
async fn reuse_detection_and_code_replay_reach_the_feed() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    poll_stream(&server, &rs).await;
    let refresh = |token: String| {
        let server = &server;
        async move {
            server
                .post_form(
                    "/token",
                    Some(("web", "web-secret")),
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                )
                .await
                .status()
                .as_u16()
        }
    };
    let tokens = sign_in(&server).await;
    let sid = sid_of(&tokens);
    let spent = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(spent.clone()).await, 200);
    assert_eq!(
        poll(&server, &rs, json!({ "returnImmediately": true })).await["sets"],
        json!({}),
        "a rotation is no revocation"
    );
    assert_eq!(refresh(spent).await, 400, "reuse");
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let (jti, set) = one_set(&server, &answer, "rs").await;
    assert_eq!(set["sub_id"]["session"]["id"], sid.as_str());
    let event = &set["events"][SESSION_REVOKED];
    assert_eq!(event["initiating_entity"], "policy");
    assert!(event["reason_admin"]["en"].as_str().unwrap().contains("refresh token was presented again"), "{set}");

    // An authorization code redeemed twice kills the family it created.
    let code = code_without_pkce(&server, "web", "alice", "alice-password", "openid", false).await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", WEB_REDIRECT)];
    assert_eq!(server.post_form("/token", Some(("web", "web-secret")), &form).await.status(), 200);
    assert_eq!(server.post_form("/token", Some(("web", "web-secret")), &form).await.status(), 400);
    let answer = poll(&server, &rs, json!({ "ack": [jti], "returnImmediately": true })).await;
    let (_, set) = one_set(&server, &answer, "rs").await;
    assert!(set["events"][SESSION_REVOKED]["reason_admin"]["en"].as_str().unwrap().contains("redeemed twice"), "{set}");
}

#[tokio::test]
async fn a_deleted_receiver_client_is_fed_nothing_more() {
    let (receiver, url) = Receiver::start(vec![], 202).await;
    let server = Server::start(&config(), &[]);
    let admin = cc_token(&server, "ops", "ops-secret").await;
    let (status, created) = call(
        &server,
        "POST",
        "/admin/clients",
        Some(&admin),
        Some(json!({ "id": "cache", "grant_types": ["client_credentials"], "scopes": ["ssf.manage"] })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = cc_token(&server, "cache", created["client_secret"].as_str().unwrap()).await;
    push_stream(&server, &token, &url).await;
    assert_eq!(call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await.0, 204);
    assert!(eventually(Duration::from_secs(4), || async { receiver.got().len() == 1 }).await, "fed while a client");

    assert_eq!(call(&server, "DELETE", "/admin/clients/cache", Some(&admin), None).await.0, 204);
    assert_eq!(call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await.0, 204);
    // sleep: an absence (no delivery to a deleted client) cannot be polled for
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.got().len(), 1, "its stream went with the client");
}

#[tokio::test]
async fn bad_input_gets_a_400_that_names_the_problem() {
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let raw = |path: &'static str, body: &'static str| {
        let (server, rs) = (&server, rs.clone());
        async move {
            let resp = server.http.post(server.url(path)).bearer_auth(rs).body(body).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw("/ssf/stream", "{not json").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("the body must be a JSON object"), "{body}");
    let (status, body) = raw("/ssf/poll", r#"{"ack": [], "ack": ["x"]}"#).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains(r#"the key "ack" twice"#), "{body}");
    let (status, body) = raw("/ssf/stream", "[1]").await;
    assert_eq!((status, body["message"].as_str()), (400, Some("the body must be a JSON object")));
    let (status, body) =
        raw("/ssf/stream", r#"{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "ftp://x"}}"#).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("delivery.endpoint_url: must use https"), "{body}");
    poll_stream(&server, &rs).await;
    let (status, body) = raw("/ssf/poll", r#"{"maxEvents": -1}"#).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("maxEvents"), "{body}");
    let (status, body) = raw("/ssf/status", r#"{"status": "enabled"}"#).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("stream_id: is required")));
    let (status, _) = call(&server, "DELETE", "/ssf/stream", Some(&rs), None).await;
    assert_eq!(status, 400, "DELETE needs stream_id");
}

#[tokio::test]
async fn a_receivers_set_errors_cannot_forge_log_lines() {
    let server = Server::start(&strict_config(), &[("TENURE_LOG", "warn")]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let id = poll_stream(&server, &rs).await;
    assert_eq!(call(&server, "POST", "/ssf/verify", Some(&rs), Some(json!({ "stream_id": id }))).await.0, 204);
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let (jti, _) = one_set(&server, &answer, "rs").await;
    let forged = "FORGED 2026-12-06T12:00:00.000000Z  INFO audit event audit=\"user.created\" actor=\"admin\"";
    let errs = json!({
        jti: { "err": format!("invalid_key\n{forged}"), "description": format!("bad\r\n{forged}\u{2028}{forged}") },
        format!("unknown\n{forged}"): { "err": "x", "description": format!("\n{forged}") },
    });
    poll(&server, &rs, json!({ "setErrs": errs, "returnImmediately": true })).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            server.log_lines().iter().filter(|l| l.contains("a receiver reported a SET error")).count() == 2
        })
        .await,
        "both reports logged: {:?}",
        server.log_lines()
    );
    let lines = server.log_lines();
    assert!(lines.iter().all(|l| !l.starts_with("FORGED")), "a receiver forged a log line: {lines:#?}");
    let reports: Vec<&String> = lines.iter().filter(|l| l.contains("a receiver reported a SET error")).collect();
    assert!(reports.iter().any(|l| l.contains("invalid_key\\nFORGED")), "the text is kept, escaped: {reports:#?}");
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    assert_eq!(answer["sets"], json!({}), "the reported SET was removed");
}

#[tokio::test]
async fn push_endpoints_on_loopback_private_or_metadata_addresses_are_refused_by_default() {
    let server = Server::start(&strict_config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let push_to = |url: &str| {
        json!({ "delivery": { "method": PUSH, "endpoint_url": url,
        "authorization_header": "Bearer receiver-secret" } })
    };
    for url in [
        "http://127.0.0.1:9/events",
        "https://10.0.0.1/events",
        "https://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/events",
        "https://[fd00::1]/events",
        "https://100.64.0.1/events",
        "https://[::ffff:127.0.0.1]/events",
        "http://localhost:9/events",
    ] {
        let (status, body) = call(&server, "POST", "/ssf/stream", Some(&rs), Some(push_to(url))).await;
        assert_eq!(status, 400, "{url}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("delivery.endpoint_url: "), "{message}");
        assert!(message.contains("feed.allowed_private_networks"), "names the key that allows it: {message}");
    }
    let (_, body) =
        call(&server, "POST", "/ssf/stream", Some(&rs), Some(push_to("https://169.254.169.254/latest"))).await;
    assert!(body["message"].as_str().unwrap().contains("169.254.169.254 is a link-local address"), "{body}");
    let (_, body) = call(&server, "POST", "/ssf/stream", Some(&rs), Some(push_to("http://localhost:9/events"))).await;
    assert!(body["message"].as_str().unwrap().contains("localhost resolves to 127.0.0.1"), "{body}");

    // Changing a stream's delivery is checked the same way.
    let id = poll_stream(&server, &rs).await;
    let mut change = push_to("https://192.168.1.10/events");
    change["stream_id"] = json!(id);
    let (status, body) = call(&server, "PATCH", "/ssf/stream", Some(&rs), Some(change.clone())).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("delivery.endpoint_url: 192.168.1.10 is a private"));
    assert_eq!(call(&server, "PUT", "/ssf/stream", Some(&rs), Some(change)).await.0, 400);
    let mut public = push_to("https://93.184.215.14/events");
    public["stream_id"] = json!(id);
    let (status, body) = call(&server, "PATCH", "/ssf/stream", Some(&rs), Some(public)).await;
    assert_eq!(status, 200, "a public address is fine: {body}");
}

#[tokio::test]
async fn a_stored_endpoint_whose_name_resolves_to_loopback_is_not_pushed_to_once_not_allowed() {
    let (receiver, url) = Receiver::start(vec![], 202).await;
    let url = url.replace("127.0.0.1", "localhost");
    let server = Server::start(&config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    push_stream(&server, &rs, &url).await;
    assert_eq!(call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await.0, 204);
    assert!(eventually(Duration::from_secs(4), || async { receiver.got().len() == 1 }).await, "pushed while allowed");

    // The operator removes the allowance; the stream stays stored. Every
    // connection resolves the name again and refuses the loopback address.
    let dir = server.kill_keep_dir();
    let server = Server::start_in(dir, &strict_config(), &[("TENURE_LOG", "warn")]);
    let admin = cc_token(&server, "ops", "ops-secret").await;
    assert_eq!(call(&server, "DELETE", "/admin/users/alice/sessions", Some(&admin), None).await.0, 204);
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.log_lines().iter().any(|l| l.contains("push target refused: localhost resolves to 127.0.0.1"))
        })
        .await,
        "the attempt is refused at connect time: {:#?}",
        server.log_lines()
    );
    assert_eq!(receiver.got().len(), 1, "nothing reached the loopback receiver");
}

#[tokio::test]
async fn verification_requests_are_bounded_per_stream() {
    let server = Server::start(&strict_config(), &[]);
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let id = poll_stream(&server, &rs).await;
    let (_, stream) = call(&server, "GET", &format!("/ssf/stream?stream_id={id}"), Some(&rs), None).await;
    assert_eq!(stream["min_verification_interval"], 30, "SSF 1.0: the transmitter says how often");
    assert_eq!(call(&server, "POST", "/ssf/verify", Some(&rs), Some(json!({ "stream_id": id }))).await.0, 204);
    for _ in 0..20 {
        let resp = server
            .http
            .post(server.url("/ssf/verify"))
            .bearer_auth(&rs)
            .json(&json!({ "stream_id": id, "state": "again" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "Retry-After: {wait}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("min_verification_interval"), "{body}");
    }
    let answer = poll(&server, &rs, json!({ "returnImmediately": true })).await;
    let (_, set) = one_set(&server, &answer, "rs").await;
    assert!(set["events"][VERIFICATION].is_object(), "one verification event queued, not 21");
}

#[tokio::test]
async fn polling_a_long_queue_never_delays_other_requests_and_signs_each_set_once() {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    const EVENTS: usize = 1500;
    let server = Arc::new(Server::start(&strict_config(), &[]));
    let rs = cc_token(&server, "rs", "rs-secret").await;
    let admin = cc_token(&server, "ops", "ops-secret").await;
    poll_stream(&server, &rs).await;

    // Queue many events: every revocation of alice's sessions queues one.
    let queued = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (server, admin, queued) = (server.clone(), admin.clone(), queued.clone());
        writers.spawn(async move {
            while queued.fetch_add(1, Ordering::SeqCst) < EVENTS {
                let url = server.url("/admin/users/alice/sessions");
                let resp = server.http.delete(url).bearer_auth(&admin).send().await.unwrap();
                assert_eq!(resp.status(), 204);
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    // GET /healthz answers within this (the machine may be loaded by
    // more than this test).
    let probe = reqwest::Client::new();
    let worst_of = |probes: usize| {
        let (probe, server) = (probe.clone(), server.clone());
        async move {
            let mut worst = Duration::ZERO;
            for _ in 0..probes {
                let started = tokio::time::Instant::now();
                let resp = probe.get(server.url("/healthz")).timeout(Duration::from_secs(60)).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                worst = worst.max(started.elapsed());
                // sleep: the probes are spaced on purpose, to sample latency over time
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            worst
        }
    };
    let idle = worst_of(10).await;

    // Receivers poll the whole queue again and again, two at once.
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (server, rs, stop, polls) = (server.clone(), rs.clone(), stop.clone(), polls.clone());
        pollers.spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let resp = http
                    .post(server.url("/ssf/poll"))
                    .bearer_auth(&rs)
                    .json(&json!({ "maxEvents": 1000, "returnImmediately": true }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
                polls.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // Meanwhile an unrelated request answers promptly, every time: within
    // a second more than it took before the polls began.
    let worst = worst_of(30).await;
    stop.store(true, Ordering::SeqCst);
    while let Some(done) = pollers.join_next().await {
        done.unwrap();
    }
    let polls = polls.load(Ordering::SeqCst);
    assert!(polls >= 2, "the polls ran");
    assert!(
        worst < Duration::from_secs(1) + idle,
        "GET /healthz took up to {worst:?} while the feed was polled ({polls} polls), {idle:?} before"
    );
    eprintln!("GET /healthz: at most {worst:?} during {polls} polls of 1000 SETs, {idle:?} before");

    // Signed once: the same SETs, byte for byte, poll after poll.
    let first = poll(&server, &rs, json!({ "maxEvents": 1000, "returnImmediately": true })).await;
    let again = poll(&server, &rs, json!({ "maxEvents": 1000, "returnImmediately": true })).await;
    assert_eq!(first["sets"].as_object().unwrap().len(), 1000);
    assert_eq!(first["moreAvailable"], true);
    assert_eq!(first["sets"], again["sets"]);
    let jwks = server.jwks().await;
    for token in first["sets"].as_object().unwrap().values().take(5) {
        verify_set(token.as_str().unwrap(), &jwks, &server.base, "rs");
    }
}
