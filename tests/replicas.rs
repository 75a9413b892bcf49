//! Two `tenure serve` replicas on one PostgreSQL database (issue #9): what
//! one replica does is in force at the other at once — tokens, revocations,
//! settings, clients, throttles — and the coordination tables (leases, the
//! outbox claims) hand each piece of shared work to one replica at a time.
//!
//! Each test gets a fresh database on the harness's throwaway server
//! (tests/support/postgres.rs); without PostgreSQL they print one SKIPPED
//! line and pass, unless TENURE_REQUIRE_EXTERNAL=1.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::flow::Browser;
use crate::support::kit::{LogoutReceiver, ROOT_AUTOMATION, root_token, user};
use crate::support::postgres::{self, PgDatabase};
use crate::support::{Server, eventually};

const REDIRECT: &str = "https://app.example/cb";
const ISSUER: &str = "http://tenure.replicas.test";

fn config() -> String {
    crate::support::config_with(&format!(
        r#"{ROOT_AUTOMATION}
[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["{REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]

{}"#,
        user("alice", &[])
    ))
}

/// Replicas A and B on a freshly migrated database, sharing A's keys
/// directory (as they share `keys/master.key`).
async fn replicas() -> Option<(PgDatabase, Server, Server)> {
    let db = postgres::database().await?;
    crate::support::postgres::migrate(&db.url);
    // One issuer, as behind the load balancer.
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str()), ("TENURE_ISSUER", ISSUER)];
    let a = Server::start(&config(), &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config(), &[env[0], env[1], env[2], ("TENURE_KEYS_DIR", keys.as_str())]);
    Some((db, a, b))
}

async fn tokens_at(server: &Server) -> Value {
    let code = Browser::new()
        .sign_in_for_code(
            server,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")],
            "alice",
            "alice-password",
            false,
        )
        .await;
    let (status, body) =
        web(server, "/token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
            .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn web(server: &Server, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = server.post_form(path, Some(("web", "web-secret")), form).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn refresh(server: &Server, token: &str) -> (u16, Value) {
    web(server, "/token", &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
}

fn field(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_owned()
}

async fn root(server: &Server) -> String {
    root_token(server).await
}

async fn admin(server: &Server, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = server
        .http
        .request(method.parse().expect("method"), server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("admin call");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn signed_in_at_a_refreshed_at_b_revoked_at_b_is_inactive_at_a_at_once() {
    let Some((_db, a, b)) = replicas().await else { return };
    let tokens = tokens_at(&a).await;
    let (status, rotated) = refresh(&b, &field(&tokens, "refresh_token")).await;
    assert_eq!(status, 200, "a refresh token issued at A refreshes at B: {rotated}");
    let access = field(&rotated, "access_token");
    let (_, active) = web(&a, "/introspect", &[("token", &access)]).await;
    assert_eq!(active["active"], true, "{active}");

    let (status, _) = web(&b, "/revoke", &[("token", &field(&rotated, "refresh_token"))]).await;
    assert_eq!(status, 200);
    // The very next introspection at A: revocation state is never cached.
    let (_, after) = web(&a, "/introspect", &[("token", &access)]).await;
    assert_eq!(after["active"], false, "revoked at B, inactive at A: {after}");
}

#[tokio::test]
async fn a_reuse_at_a_of_a_token_rotated_at_b_kills_the_family() {
    let Some((_db, a, b)) = replicas().await else { return };
    let tokens = tokens_at(&a).await;
    let first = field(&tokens, "refresh_token");
    let (status, rotated) = refresh(&b, &first).await;
    assert_eq!(status, 200);
    let (status, reuse) = refresh(&a, &first).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")), "{reuse}");
    let (status, dead) = refresh(&b, &field(&rotated, "refresh_token")).await;
    assert_eq!((status, dead["error"].as_str()), (400, Some("invalid_grant")), "the family is dead at B too: {dead}");
}

#[tokio::test]
async fn concurrent_first_uses_across_a_and_b_with_no_grace_have_one_success() {
    let Some((_db, a, b)) = replicas().await else { return };
    for _round in 0..3 {
        let first = field(&tokens_at(&a).await, "refresh_token");
        let mut uses = tokio::task::JoinSet::new();
        for i in 0..8 {
            let server = if i % 2 == 0 { &a } else { &b };
            let (http, url, token) = (server.http.clone(), server.url("/token"), first.clone());
            uses.spawn(async move {
                let resp = http
                    .post(url)
                    .basic_auth("web", Some("web-secret"))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                    .send()
                    .await
                    .expect("refresh");
                (resp.status().as_u16(), resp.text().await.unwrap_or_default())
            });
        }
        let outcomes = uses.join_all().await;
        let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(ok, 1, "exactly one first use rotates (grace 0): {outcomes:?}");
    }
}

#[tokio::test]
async fn a_settings_change_at_a_is_in_force_at_b_at_once() {
    let Some((_db, a, b)) = replicas().await else { return };
    let (ra, rb) = (root(&a).await, root(&b).await);
    let (status, view) = admin(&a, "PUT", "/admin/settings/session", &ra, json!({"access_token_ttl": 1200})).await;
    assert_eq!(status, 200, "{view}");
    // NOTIFY makes it immediate; the deadline only absorbs the hop.
    let started = Instant::now();
    let seen = std::cell::RefCell::new(Value::Null);
    eventually(Duration::from_millis(900), || async {
        let now = admin(&b, "GET", "/admin/settings/session", &rb, Value::Null).await.1;
        *seen.borrow_mut() = now;
        *seen.borrow() == view
    })
    .await;
    assert_eq!(*seen.borrow(), view, "B shows A's settings within {:?}", started.elapsed());
    // And B issues by them: a token from B lives 1200 s.
    let tokens = tokens_at(&b).await;
    assert_eq!(tokens["expires_in"], 1200, "{tokens}");

    // A client created at A authenticates at B.
    let (status, created) = admin(
        &a,
        "POST",
        "/admin/clients",
        &ra,
        json!({"id": "reports", "grant_types": ["client_credentials"], "scopes": ["orders:read"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = field(&created, "client_secret");
    let ok = crate::support::eventually(Duration::from_millis(900), || async {
        b.post_form("/token", Some(("reports", &secret)), &[("grant_type", "client_credentials")]).await.status() == 200
    })
    .await;
    assert!(ok, "a client created at A is known at B at once");
}

#[tokio::test]
async fn failed_sign_ins_at_a_lock_the_account_at_b() {
    let Some((_db, a, b)) = replicas().await else { return };
    let query = [("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")];
    let attempt = |server: &'static str, password: &'static str| {
        let server = if server == "a" { &a } else { &b };
        async move {
            let browser = Browser::new();
            let page = browser.authorize(server, &query).await.text().await.expect("sign-in page");
            browser.submit_sign_in(server, &page, "alice", password, false).await
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("a", "wrong-password").await.status(), 401);
    }
    // The right password at the other replica: locked for this address.
    let resp = attempt("b", "alice-password").await;
    assert_eq!(resp.status(), 429, "the lock set at A holds at B");
    assert!(resp.headers().contains_key("retry-after"));
}

/// The coordination tables from the library: a lease goes to one owner
/// until it runs out; an outbox delivery is claimed by one replica at a
/// time and taken over once its claim has run out.
#[tokio::test]
async fn leases_and_outbox_claims_go_to_one_replica_at_a_time() {
    use tenure::clock::UnixTime;
    use tenure::logout::{Delivery, DeliveryKind};
    use tenure::store::Store;
    let Some((_db, store)) = postgres::migrated_store().await else { return };
    let t0 = UnixTime(1_800_000_000);
    let at = |s: u64| UnixTime(t0.as_secs() + s);
    assert!(store.take_lease("sweeper", "a", t0, at(120)).await.expect("lease"));
    assert!(!store.take_lease("sweeper", "b", at(60), at(180)).await.expect("lease"), "A holds it");
    assert!(store.take_lease("sweeper", "a", at(60), at(180)).await.expect("lease"), "A renews it");
    assert!(store.take_lease("sweeper", "b", at(180), at(300)).await.expect("lease"), "B takes over once it ran out");
    assert!(!store.take_lease("sweeper", "a", at(200), at(320)).await.expect("lease"));

    let delivery = |sid: &str| Delivery {
        sub: "alice".into(),
        kind: DeliveryKind::Logout {
            client_id: "web".into(),
            uri: "https://rp.example/logout".into(),
            sid: sid.into(),
        },
        attempts: 0,
        next_attempt_at: t0,
        created_at: t0,
    };
    store.enqueue_deliveries(&[delivery("s1"), delivery("s2")]).await.expect("enqueue");
    let by_a = store.claim_deliveries("a", t0, at(30), 10).await.expect("claim");
    assert_eq!(by_a.len(), 2);
    assert!(store.claim_deliveries("b", at(10), at(40), 10).await.expect("claim").is_empty(), "claimed by A");
    assert_eq!(store.claim_deliveries("a", at(10), at(40), 10).await.expect("claim").len(), 2, "A renews its own");
    // A finishes one and dies with the other: B takes it after the claim.
    store.finish_attempt(by_a[0].0, &by_a[0].1, None).await.expect("finish");
    assert!(store.claim_deliveries("b", at(39), at(70), 10).await.expect("claim").is_empty());
    let by_b = store.claim_deliveries("b", at(40), at(70), 10).await.expect("claim");
    assert_eq!(by_b.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![by_a[1].0]);
}

/// The throttle counted in the database: failures from every replica add
/// up, the limit locks, a success clears.
#[tokio::test]
async fn shared_throttles_count_failures_in_the_database() {
    use tenure::clock::UnixTime;
    use tenure::duration::Secs;
    use tenure::oauth::throttle::{ThrottleKey, ThrottleRules};
    use tenure::store::Store;
    let Some((_db, store)) = postgres::migrated_store().await else { return };
    let rules =
        ThrottleRules { limit: 3, window: Secs::minutes(5), lock_base: Secs::minutes(5), lock_cap: Secs::hours(1) };
    let key = ThrottleKey::of(&["user", "alice", "10.0.0.1"]);
    let t0 = UnixTime(1_800_000_000);
    assert_eq!(store.shared_throttle(&key).await.expect("read"), None);
    let (x, y, z) = tokio::join!(
        store.throttle_failed(&key, &rules, t0),
        store.throttle_failed(&key, &rules, t0),
        store.throttle_failed(&key, &rules, t0)
    );
    for state in [x, y, z] {
        state.expect("counted");
    }
    let state = store.shared_throttle(&key).await.expect("read").expect("on record");
    assert_eq!(state.locked_until, UnixTime(t0.as_secs() + 300), "three concurrent failures lock: {state:?}");
    store.clear_throttle(&key).await.expect("clear");
    assert_eq!(store.shared_throttle(&key).await.expect("read"), None);
}

/// What one chain of refreshes knows when it stops.
struct Chain {
    /// The refresh token of the last answered rotation.
    last_ok: String,
    /// The last request reached a replica that died before answering: it may
    /// or may not have rotated (it was never acknowledged).
    in_doubt: bool,
}

/// SIGKILL of A under load: a few hundred refreshes in flight across A and
/// B, then A dies. Every rotation A answered is honoured at B, every
/// acknowledged revocation holds there, and every queued back-channel
/// logout is delivered (by B, once A's claims on the outbox run out).
#[tokio::test]
async fn sigkill_of_a_under_load_loses_no_rotation_revocation_or_queued_logout() {
    let Some(db) = postgres::database().await else { return };
    let rp = LogoutReceiver::start().await;
    postgres::migrate(&db.url);
    let config = config().replace(
        "scopes = [\"openid\"]\n",
        &format!("scopes = [\"openid\"]\nbackchannel_logout_uri = \"{}\"\n", rp.uri),
    );
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str()), ("TENURE_ISSUER", ISSUER)];
    let a = Server::start(&config, &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config, &[env[0], env[1], env[2], ("TENURE_KEYS_DIR", keys.as_str())]);

    // Families to refresh, and families to revoke at A just before it dies.
    let mut chains = Vec::new();
    for i in 0..16 {
        chains.push(field(&tokens_at(if i % 2 == 0 { &a } else { &b }).await, "refresh_token"));
    }
    let mut doomed = Vec::new();
    for _ in 0..6 {
        let t = tokens_at(&a).await;
        let sid = {
            use base64::Engine;
            let id = field(&t, "id_token");
            let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id.split('.').nth(1).expect("payload"))
                .expect("base64");
            serde_json::from_slice::<Value>(&payload).expect("claims")["sid"].as_str().expect("sid").to_owned()
        };
        doomed.push((field(&t, "refresh_token"), sid));
    }

    let (a_url, b_url) = (a.url("/token"), b.url("/token"));
    let mut running = tokio::task::JoinSet::new();
    for (n, first) in chains.into_iter().enumerate() {
        let (a_url, b_url) = (a_url.clone(), b_url.clone());
        running.spawn(async move {
            let http = reqwest::Client::new();
            let mut chain = Chain { last_ok: first, in_doubt: false };
            for step in 0..40 {
                // Most chains alternate; the last four go to A every fourth
                // step only, so that at the kill some chain is almost surely
                // between requests to A (under load every alternating chain
                // may have one in flight there, which leaves nothing to check).
                let at_a = if n >= 12 { (n + step) % 4 == 0 } else { (n + step) % 2 == 0 };
                let url = if at_a { &a_url } else { &b_url };
                let sent = http
                    .post(url)
                    .basic_auth("web", Some("web-secret"))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", chain.last_ok.as_str())])
                    .send()
                    .await;
                let body = match sent {
                    Ok(resp) if resp.status() == 200 => resp.json::<Value>().await,
                    Ok(resp) => panic!("a refresh was refused: {} {:?}", resp.status(), resp.text().await),
                    // Refused connection: nothing was sent, nothing rotated.
                    Err(e) if e.is_connect() => return chain,
                    Err(_) => {
                        chain.in_doubt = true;
                        return chain;
                    }
                };
                match body {
                    Ok(body) => chain.last_ok = field(&body, "refresh_token"),
                    Err(_) => {
                        chain.in_doubt = true;
                        return chain;
                    }
                }
            }
            chain
        });
    }
    // Revocations acknowledged by A while the load runs, then SIGKILL.
    // sleep: lets the load run before the revocations; nothing to wait for
    tokio::time::sleep(Duration::from_millis(150)).await;
    for (token, _) in &doomed {
        assert_eq!(web(&a, "/revoke", &[("token", token)]).await.0, 200);
    }
    let dir_a = a.kill_keep_dir();
    let chains = running.join_all().await;

    let mut checked = 0;
    for chain in chains.iter().filter(|c| !c.in_doubt) {
        let (status, body) = refresh(&b, &chain.last_ok).await;
        assert_eq!(status, 200, "a rotation answered before A died is honoured at B: {body}");
        checked += 1;
    }
    // About half the chains have a request in flight at A when it dies:
    // those rotations were never answered, so nothing is owed for them.
    assert!(checked > 0, "some chains ended cleanly ({checked} of {})", chains.len());
    for (token, _) in &doomed {
        let (status, body) = refresh(&b, token).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "revoked at A, dead at B");
    }
    // Every logout queued by those revocations arrives; one claimed by A
    // when it died waits for its claim (30 s) to run out.
    let all_delivered = crate::support::eventually(Duration::from_secs(45), || async {
        let got = rp.received();
        doomed.iter().all(|(_, sid)| got.contains(sid))
    })
    .await;
    assert!(all_delivered, "delivered: {:?}", rp.received());
    drop(dir_a);
}

/// SPEC 14 on PostgreSQL: a group set at A and a member created at A are in
/// force at B at once; B's tokens for the member follow the group.
#[tokio::test]
async fn a_group_policy_set_at_a_is_in_force_at_b_at_once() {
    let Some((_db, a, b)) = replicas().await else { return };
    let (ra, rb) = (root(&a).await, root(&b).await);
    let (status, group) =
        admin(&a, "PUT", "/admin/settings/session/groups/admins", &ra, json!({"idle_timeout": 600})).await;
    assert_eq!(status, 200, "{group}");
    let seen = eventually(Duration::from_millis(900), || async {
        admin(&b, "GET", "/admin/settings/session/groups/admins", &rb, Value::Null).await.1 == group
    })
    .await;
    assert!(seen, "B knows A's group at once");
    let (status, created) = admin(
        &a,
        "POST",
        "/admin/users",
        &ra,
        json!({"username": "dave", "password": "dave-password", "groups": ["admins"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let code = Browser::new()
        .sign_in_for_code(
            &b,
            &[("response_type", "code"), ("client_id", "web"), ("redirect_uri", REDIRECT), ("scope", "openid")],
            "dave",
            "dave-password",
            false,
        )
        .await;
    let (status, body) =
        web(&b, "/token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600, "the group's 10 min at B: {body}");
    let (status, body) = refresh(&a, &field(&body, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600, "and at A: {body}");
}

/// SPEC 12: "the very next request" is literal. Each change at A (a
/// settings change, alternating values to catch a race; a client created,
/// then deleted) is in force at B's very next request, with no wait.
#[tokio::test]
async fn settings_and_clients_changed_at_a_are_in_force_at_bs_very_next_request() {
    let Some((_db, a, b)) = replicas().await else { return };
    let (ra, rb) = (root(&a).await, root(&b).await);
    let (status, created) = admin(
        &a,
        "POST",
        "/admin/clients",
        &ra,
        json!({"id": "reports", "grant_types": ["client_credentials"], "scopes": ["orders:read"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = field(&created, "client_secret");
    let (status, body) = credentials(&b, &secret).await;
    assert_eq!(status, 200, "a client created at A authenticates at B's very next request: {body}");

    for round in 0..20 {
        let ttl = if round % 2 == 0 { 1200 } else { 1500 };
        let (status, view) = admin(&a, "PUT", "/admin/settings/session", &ra, json!({"access_token_ttl": ttl})).await;
        assert_eq!(status, 200, "{view}");
        let (status, token) = credentials(&b, &secret).await;
        assert_eq!(
            (status, &token["expires_in"]),
            (200, &json!(ttl)),
            "round {round}: B issues by A's change: {token}"
        );
        let (_, at_b) = admin(&b, "GET", "/admin/settings/session", &rb, Value::Null).await;
        assert_eq!(at_b, view, "round {round}: B shows A's settings");
    }

    let (status, _) = admin(&a, "DELETE", "/admin/clients/reports", &ra, Value::Null).await;
    assert_eq!(status, 204);
    let (status, body) = credentials(&b, &secret).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "deleted at A, refused at B: {body}");
}

/// A client-credentials token of client `reports` at `server`.
async fn credentials(server: &Server, secret: &str) -> (u16, Value) {
    let resp = server.post_form("/token", Some(("reports", secret)), &[("grant_type", "client_credentials")]).await;
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// Issue 21: A keeps the families it read (views trusted while the
/// revocation epoch stands still); every kind of end made at B is in force
/// at A's very next request, for introspection and for the refresh grant:
/// the user's sessions revoked, one session revoked, the family revoked.
#[tokio::test]
async fn ends_made_at_b_are_in_force_at_a_which_kept_the_families() {
    let Some((_db, a, b)) = replicas().await else { return };
    let rb = root(&b).await;
    for end in ["user", "session", "family"] {
        let tokens = tokens_at(&a).await;
        // Two rotations and an introspection at A: A has the family's view.
        let (status, first) = refresh(&a, &field(&tokens, "refresh_token")).await;
        assert_eq!(status, 200, "{end}: {first}");
        let (status, second) = refresh(&a, &field(&first, "refresh_token")).await;
        assert_eq!(status, 200, "{end}: {second}");
        let access = field(&second, "access_token");
        let (_, active) = web(&a, "/introspect", &[("token", &access)]).await;
        assert_eq!(active["active"], true, "{end}: {active}");

        let status = match end {
            "user" => admin(&b, "DELETE", "/admin/users/alice/sessions", &rb, Value::Null).await.0,
            "session" => {
                admin(&b, "DELETE", &format!("/admin/sessions/{}", field(&active, "sid")), &rb, Value::Null).await.0
            }
            _ => web(&b, "/revoke", &[("token", &field(&second, "refresh_token"))]).await.0,
        };
        assert!(matches!(status, 200 | 204), "{end}: revoked at B ({status})");

        let (_, after) = web(&a, "/introspect", &[("token", &access)]).await;
        assert_eq!(after["active"], false, "{end} ended at B: inactive at A at once: {after}");
        let (status, dead) = refresh(&a, &field(&second, "refresh_token")).await;
        assert_eq!((status, dead["error"].as_str()), (400, Some("invalid_grant")), "{end} ended at B: {dead}");
    }
}

/// Issue 21: rotations at A and B interleaved on one chain (each replica's
/// kept view lags behind the other's rotation) never fork it: every
/// presented token is the current one and rotates, and a spent one replayed
/// at the replica that did not spend it is a reuse that kills the family.
#[tokio::test]
async fn a_chain_alternating_between_replicas_rotates_and_a_replay_is_caught_by_either() {
    let Some((_db, a, b)) = replicas().await else { return };
    let tokens = tokens_at(&a).await;
    let mut current = field(&tokens, "refresh_token");
    let mut spent = Vec::new();
    for round in 0..12 {
        let at = if round % 2 == 0 { &a } else { &b };
        let (status, rotated) = refresh(at, &current).await;
        assert_eq!(status, 200, "round {round}: {rotated}");
        spent.push(std::mem::replace(&mut current, field(&rotated, "refresh_token")));
    }
    // A token spent five rotations ago (at A), replayed at B.
    let (status, reuse) = refresh(&b, &spent[6]).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")), "{reuse}");
    let (status, dead) = refresh(&a, &current).await;
    assert_eq!((status, dead["error"].as_str()), (400, Some("invalid_grant")), "the reuse killed the family: {dead}");
}
