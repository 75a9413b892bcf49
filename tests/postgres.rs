//! The PostgreSQL store from the operator's side (SPEC 12): `tenure
//! migrate` creates the schema once, `serve` refuses a database whose schema
//! it does not know, TLS is asked for by the URL and its failure says so, and
//! the URL's password never reaches the output.
//!
//! Each test gets a fresh database on the harness's throwaway server
//! (tests/support/postgres.rs); without PostgreSQL they print one SKIPPED
//! line and pass, unless TENURE_REQUIRE_EXTERNAL=1.

use std::process::Output;

use crate::support::kit::{WEB, WEB_REDIRECT, code_without_pkce, sign_in_without_pkce, user, web_client};
use crate::support::postgres::{self, PgDatabase};
use crate::support::{Server, tenure};
use tenure::store::postgres::migrate::{MIGRATIONS, latest};

/// Every migration this build knows, as `schema_migrations` lists them.
fn all_versions() -> Vec<(i64, String)> {
    MIGRATIONS.iter().map(|m| (m.version, m.name.to_owned())).collect()
}

/// Run `tenure <args>` in an empty directory with the PostgreSQL store on
/// `url`.
fn run(args: &[&str], url: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    tenure()
        .args(args)
        .current_dir(dir.path())
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", url)
        .env("TENURE_LISTEN", "127.0.0.1:0")
        .env("TENURE_ISSUER", "http://tenure.postgres.test")
        .output()
        .expect("run tenure")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn versions(db: &PgDatabase) -> Vec<(i64, String)> {
    let client = db.client().await;
    client
        .query("SELECT version, name FROM schema_migrations ORDER BY version", &[])
        .await
        .expect("schema_migrations exists")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn migrate_creates_the_schema_once_and_a_second_run_is_a_no_op() {
    let Some(db) = postgres::database().await else { return };
    let first = run(&["migrate"], &db.url);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "migrate failed: {stderr}");
    assert!(stdout.contains("applied migration 1 (initial)"), "{stdout}");
    assert!(stdout.contains(&format!("now at schema version {}", latest())), "{stdout}");
    assert_eq!(versions(&db).await, all_versions());
    // The tables of the records are there.
    let client = db.client().await;
    for table in ["user_sessions", "families", "auth_codes", "audit_events", "logout_outbox", "ssf_queue"] {
        client.query(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap_or_else(|e| panic!("{table}: {e}"));
    }

    let second = run(&["migrate"], &db.url);
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "second migrate failed: {stderr}");
    assert!(stdout.contains(&format!("schema version {}, the current one: nothing to do", latest())), "{stdout}");
    assert_eq!(versions(&db).await, all_versions(), "nothing applied twice");
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_names_the_fix() {
    let Some(db) = postgres::database().await else { return };
    let out = run(&["serve"], &db.url);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "serve started on an empty database: {stdout}");
    assert!(stderr.contains("no tenure schema"), "{stderr}");
    assert!(stderr.contains(&format!("schema version {}", latest())), "names the version it needs: {stderr}");
    assert!(stderr.contains("run `tenure migrate`"), "names the fix: {stderr}");
    assert!(!stdout.contains("tenure listening"), "it never listened");
}

/// SPEC 12: replicas must share one issuer, so with PostgreSQL `serve`
/// refuses to start without one (rather than take its own address), and
/// says which key and why; `migrate` needs none.
#[tokio::test]
async fn serve_with_postgres_refuses_to_start_without_an_issuer() {
    let Some(db) = postgres::database().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let tenure_in = || {
        let mut cmd = tenure();
        cmd.current_dir(dir.path())
            .env("TENURE_STORE", "postgres")
            .env("TENURE_DATABASE_URL", &db.url)
            .env("TENURE_LISTEN", "127.0.0.1:0");
        cmd
    };
    assert!(tenure_in().arg("migrate").output().expect("migrate").status.success(), "migrate needs no issuer");
    let out = tenure_in().arg("serve").output().expect("run tenure");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("issuer: is required with store = \"postgres\" (TENURE_ISSUER)"), "{stderr}");
    assert!(stderr.contains("replicas must share one issuer"), "says why: {stderr}");
    assert!(!stdout.contains("tenure listening"), "it never listened");
    assert!(!dir.path().join("keys/master.key").exists(), "it wrote nothing");
}

#[tokio::test]
async fn serve_refuses_a_newer_or_foreign_schema() {
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let client = db.client().await;
    client
        .batch_execute(&format!("INSERT INTO schema_migrations VALUES ({}, 'from_the_future', 'x', 0)", latest() + 1))
        .await
        .expect("insert a newer version");
    let newer = format!("schema version {}, newer than version {}", latest() + 1, latest());
    let out = run(&["serve"], &db.url);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains(&newer), "{stderr}");
    // migrate does not touch it either.
    let out = run(&["migrate"], &db.url);
    assert!(!out.status.success());
    assert!(text(&out).1.contains(&format!("newer than version {}", latest())), "{}", text(&out).1);

    // A version 1 that is not tenure's (edited, or another program's).
    client
        .batch_execute(&format!("DELETE FROM schema_migrations WHERE version = {}", latest() + 1))
        .await
        .expect("delete");
    client.batch_execute("UPDATE schema_migrations SET checksum = 'edited'").await.expect("edit");
    let out = run(&["serve"], &db.url);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("a schema this tenure does not know"), "{stderr}");
}

#[tokio::test]
async fn an_sslmode_require_url_fails_with_a_clear_tls_message() {
    let Some(db) = postgres::database().await else { return };
    // The harness's server has no TLS.
    for args in [&["migrate"][..], &["serve"][..]] {
        let out = run(args, &db.url_with("sslmode=require"));
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} connected without TLS");
        assert!(stderr.contains("over TLS"), "{args:?}: {stderr}");
        assert!(stderr.contains("server does not support TLS"), "{args:?}: {stderr}");
        assert!(stderr.contains("sslmode=require"), "names the setting: {stderr}");
    }
}

/// Start `tenure serve` on `url` in `dir` and wait until it listens (or
/// exits); with `keys`, the keys directory of another replica.
fn serve(dir: &std::path::Path, url: &str, keys: Option<&std::path::Path>, log: &str) -> std::process::Child {
    std::fs::write(dir.join("tenure.toml"), config()).expect("write config");
    let mut cmd = tenure();
    cmd.arg("serve")
        .current_dir(dir)
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", url)
        .env("TENURE_ISSUER", "http://tenure.postgres.test")
        .env("TENURE_LOG", log)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(keys) = keys {
        cmd.env("TENURE_KEYS_DIR", keys);
    }
    cmd.spawn().expect("spawn tenure serve")
}

/// The base URL a started server prints, reading its stdout.
fn listening(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines.next().expect("a line").expect("utf-8");
    let base = line.strip_prefix("tenure listening on ").expect("the listening line").split_whitespace().next();
    base.expect("a URL").to_owned()
}

fn stop(child: std::process::Child) -> String {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config() -> String {
    crate::support::config_with(&format!("{}{}", web_client(&["openid"]), user("alice", &[])))
}

#[tokio::test]
async fn the_password_in_the_url_never_reaches_the_output() {
    let Some(db) = postgres::database().await else { return };
    // The harness trusts local connections, so any password is accepted.
    let url = db.url.replacen("postgres@", "postgres:pw-Zq81-never-shown@", 1);
    assert_ne!(url, db.url, "the URL has a user to give a password to");
    for args in [&["serve"][..], &["migrate"][..], &["check-config"][..]] {
        let out = run(args, &url);
        let (stdout, stderr) = text(&out);
        assert!(!stdout.contains("pw-Zq81") && !stderr.contains("pw-Zq81"), "{args:?}: {stdout}{stderr}");
    }
    let (checked, _) = text(&run(&["check-config"], &url));
    assert!(checked.contains("store = postgres (database postgres@127.0.0.1:"), "{checked}");
    // Serving, with every log line on.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = serve(dir.path(), &url, None, "debug");
    let base = listening(&mut child);
    let ready = reqwest::get(format!("{base}/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let stderr = stop(child);
    assert!(stderr.contains("PostgreSQL store"), "the log names the store: {stderr}");
    assert!(!stderr.contains("pw-Zq81"), "{stderr}");
    // A server that is not there: the connection error names the database.
    let mut closed = url::Url::parse(&url).expect("url");
    closed.set_port(Some(1)).expect("port");
    let bad = run(&["serve"], closed.as_str());
    let (stdout, stderr) = text(&bad);
    assert!(!bad.status.success());
    assert!(stderr.contains("cannot connect to the database postgres@127.0.0.1:1/"), "{stderr}");
    assert!(!stdout.contains("pw-Zq81") && !stderr.contains("pw-Zq81"), "{stdout}{stderr}");
}

/// SPEC 12: two replicas on one database (sharing the keys directory, as
/// they share `keys/master.key`): a token issued by one is refreshed at the
/// other, and a reuse detected at one kills the family at both.
#[tokio::test]
async fn two_replicas_serve_one_issuer_from_one_database() {
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let a = Server::start(&config(), &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config(), &[env[0], env[1], ("TENURE_KEYS_DIR", keys.as_str())]);
    for r in [&a, &b] {
        assert_eq!(r.http.get(r.url("/readyz")).send().await.expect("readyz").status(), 200);
    }

    let code = code_without_pkce(&a, "web", "alice", "alice-password", "openid", false).await;
    let tokens =
        token(&a, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_REDIRECT)]).await;
    assert_eq!(tokens.0, 200, "{}", tokens.1);
    let first = tokens.1["refresh_token"].as_str().expect("refresh token").to_owned();
    // The code is spent at both.
    let replay =
        token(&b, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_REDIRECT)]).await;
    assert_eq!((replay.0, replay.1["error"].as_str()), (400, Some("invalid_grant")));

    // The family was killed by the replay: start again with a fresh sign-in.
    let second = sign_in_without_pkce(&b, WEB, "alice", "alice-password", "openid", false).await.refresh();
    let rotated = token(&a, &[("grant_type", "refresh_token"), ("refresh_token", &second)]).await;
    assert_eq!(rotated.0, 200, "a token of B refreshes at A: {}", rotated.1);
    let third = rotated.1["refresh_token"].as_str().expect("refresh token").to_owned();
    // Reusing the retired token at B kills the family for A too.
    let reuse = token(&b, &[("grant_type", "refresh_token"), ("refresh_token", &second)]).await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (400, Some("invalid_grant")));
    let dead = token(&a, &[("grant_type", "refresh_token"), ("refresh_token", &third)]).await;
    assert_eq!((dead.0, dead.1["error"].as_str()), (400, Some("invalid_grant")), "{}", dead.1);
    let old = token(&a, &[("grant_type", "refresh_token"), ("refresh_token", &first)]).await;
    assert_eq!(old.0, 400);
}

/// SPEC 7: a NUL character in a username, a name, a client id, a path or a
/// form field is a 4xx with the PostgreSQL store as with sled (PostgreSQL
/// text cannot hold NUL; it used to answer 500).
#[tokio::test]
async fn nul_characters_are_refused_alike_by_both_stores() {
    use reqwest::Method;
    use serde_json::json;
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let config = format!(
        "{}\n[[clients]]\nid = \"ops\"\nsecret = \"ops-secret\"\ngrant_types = [\"client_credentials\"]\n\
         scopes = [\"admin\"]\npermissions = [\"system:administer\"]\n",
        config()
    );
    let pg = Server::start(&config, &[("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())]);
    let sled = Server::start(&config, &[]);
    let mut admins = Vec::new();
    for server in [&pg, &sled] {
        let resp =
            server.post_form("/token", Some(("ops", "ops-secret")), &[("grant_type", "client_credentials")]).await;
        let body: serde_json::Value = resp.json().await.expect("json");
        let admin = body["access_token"].as_str().expect("admin token").to_owned();
        let created = server
            .http
            .post(server.url("/admin/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": "dave", "password": "dave-password-1"}))
            .send()
            .await
            .expect("create dave");
        assert_eq!(created.status(), 201);
        admins.push(admin);
    }
    let probes: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (Method::POST, "/admin/users", Some(json!({"username": "a\u{0}b", "password": "long-password-1"}))),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "erin", "password": "long-password-1", "name": "E\u{0}"})),
        ),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "frank", "password": "long-password-1", "email": "f\u{0}@example.com"})),
        ),
        (Method::POST, "/admin/users", Some(json!({"username": "gus", "password": "long-password-1", "x\u{0}": 1}))),
        (Method::PATCH, "/admin/users/dave", Some(json!({"name": "Dave\u{0}"}))),
        (Method::GET, "/admin/users/a%00b", None),
        (Method::PATCH, "/admin/users/a%00b", Some(json!({"name": "x"}))),
        (Method::DELETE, "/admin/users/a%00b", None),
        (Method::GET, "/admin/users/a%00b/sessions", None),
        (Method::DELETE, "/admin/users/a%00b/sessions", None),
        (Method::DELETE, "/admin/sessions/a%00b", None),
        (Method::GET, "/admin/clients/a%00b", None),
        (Method::DELETE, "/admin/clients/a%00b", None),
        (Method::POST, "/admin/clients", Some(json!({"id": "a\u{0}b", "grant_types": ["client_credentials"]}))),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"id": "svc", "name": "S\u{0}", "grant_types": ["client_credentials"]})),
        ),
        (Method::GET, "/admin/audit?actor=a%00b", None),
        (Method::GET, "/admin/users?query=a%00b", None),
    ];
    for (method, path, body) in &probes {
        let mut statuses = Vec::new();
        for (server, admin) in [&pg, &sled].into_iter().zip(&admins) {
            let mut req = server.http.request(method.clone(), server.url(path)).bearer_auth(admin);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            assert!((400..500).contains(&status), "{method} {path} {body:?}: {status} {text}");
            statuses.push(status);
        }
        assert_eq!(statuses[0], statuses[1], "{method} {path} {body:?}: PostgreSQL and sled answer alike");
    }
    // Form fields of the OAuth endpoints.
    let forms: [&[(&str, &str)]; 2] = [
        &[("grant_type", "client_credentials"), ("client_id", "a\u{0}b"), ("client_secret", "s")],
        &[("grant_type", "password"), ("username", "a\u{0}b"), ("password", "p")],
    ];
    for form in forms {
        let mut statuses = Vec::new();
        for server in [&pg, &sled] {
            let status = server.post_form("/token", None, form).await.status().as_u16();
            assert!((400..500).contains(&status), "{form:?}: {status}");
            statuses.push(status);
        }
        assert_eq!(statuses[0], statuses[1], "{form:?}");
    }
    // Nothing was created or changed.
    for (server, admin) in [&pg, &sled].into_iter().zip(&admins) {
        let dave: serde_json::Value = server
            .http
            .get(server.url("/admin/users/dave"))
            .bearer_auth(admin)
            .send()
            .await
            .expect("dave")
            .json()
            .await
            .expect("json");
        assert_eq!(dave["name"], serde_json::Value::Null, "{dave}");
    }
}

/// Issue 17: the tombstones of deleted users and clients hold on
/// PostgreSQL as on sled (the admin API end to end).
#[tokio::test]
async fn a_deleted_username_is_never_given_again_on_postgres() {
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let server = Server::start(&crate::admin_api::config(), &env);
    crate::admin_api::names_are_never_given_again(&server).await;
}

/// SPEC 14 on PostgreSQL: every ending named at the refresh, listed with
/// why and when, and audited with `end_reason` (tests/end_reasons.rs).
#[tokio::test]
async fn ended_sessions_are_named_and_listed_on_postgres() {
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let server = Server::start(&crate::end_reasons::config(), &env);
    crate::end_reasons::endings_are_named_and_listed(&server).await;
}

async fn token(server: &Server, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let resp = server.post_form("/token", Some(("web", "web-secret")), form).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn the_library_migrates_and_checks_the_store() {
    let Some((_db, store)) = postgres::migrated_store().await else { return };
    tenure::store::Store::check(&store).await.expect("the database answers");
    assert_eq!(store.require_current_schema().await.expect("current"), latest());
    assert!(store.migrate(tenure::clock::UnixTime(1_700_000_001)).await.expect("again").is_empty());
}

#[test]
fn migrate_needs_the_postgres_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tenure().arg("migrate").current_dir(dir.path()).output().expect("run tenure");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migrate applies to the PostgreSQL store"), "{stderr}");
    assert!(stderr.contains("TENURE_DATABASE_URL"), "{stderr}");
}

// ---- What the PostgreSQL store does beyond the store contract suite
// (tests/store_contract.rs, which runs on both backends): the feed's
// streams read inside a killing transaction, and the sweeper's batches. ----

mod store_ops {
    use tenure::audit::{AuditEvent, EventKind};
    use tenure::clock::UnixTime;
    use tenure::duration::Secs;
    use tenure::logout::{Delivery, DeliveryKind};
    use tenure::session::Revoked;
    use tenure::session::code::AuthCode;
    use tenure::session::family::{Activity, Family, RefreshDecision, decide_refresh};
    use tenure::session::user_session::UserSession;
    use tenure::ssf::{QueuedSet, SetEvent, SetSubject, Stream};
    use tenure::store::{Effects, Fallout, NoFallout, Store};

    use crate::support::postgres;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const SID: &str = "0123456789abcdef0123456789abcdef";

    /// Writes one audit event per revocation it is told of (naming what
    /// died and the streams it was given), and for a user a fan-out delivery
    /// and one feed event per stream.
    struct Recorder;

    fn event(kind: EventKind, target: String) -> AuditEvent {
        AuditEvent::new(T0, kind, "system", target)
    }

    fn feed_event(client: &str, user: &str) -> QueuedSet {
        let revoked = SetEvent::SessionRevoked { reason: "x".into(), initiating_entity: None, event_timestamp: T0 };
        QueuedSet::new(client, SetSubject::User { user: user.into() }, revoked, T0)
    }

    impl Fallout for Recorder {
        fn family_revoked(&self, family: &Family, streams: &[Stream]) -> Effects {
            let names: Vec<&str> = streams.iter().map(|s| s.client_id.as_str()).collect();
            let target = format!("family:{} streams:{}", family.id, names.join(","));
            Effects { events: vec![event(EventKind::FamilyRevoked, target)], ..Effects::default() }
        }
        fn families_superseded(&self, families: &[Family], by: &Family) -> Effects {
            let ids: Vec<&str> = families.iter().map(|f| f.id.as_str()).collect();
            let target = format!("families:{} by {}", ids.join(","), by.id);
            Effects { events: vec![event(EventKind::FamilyRevoked, target)], ..Effects::default() }
        }
        fn session_revoked(&self, session: &UserSession, live: &[Family], _: &[Stream]) -> Effects {
            let ids: Vec<&str> = live.iter().map(|f| f.id.as_str()).collect();
            let target = format!("session:{} live:{}", session.sid, ids.join(","));
            Effects { events: vec![event(EventKind::SessionRevoked, target)], ..Effects::default() }
        }
        fn user_revoked(&self, username: &str, seq: u64, revoked: &Revoked, streams: &[Stream]) -> Effects {
            Effects {
                events: vec![event(EventKind::UserSessionsRevoked, format!("user:{username}"))],
                deliveries: vec![Delivery {
                    kind: DeliveryKind::UserFanout { seq },
                    sub: username.to_owned(),
                    created_at: revoked.at,
                    attempts: 0,
                    next_attempt_at: revoked.at,
                }],
                sets: streams.iter().map(|s| feed_event(&s.client_id, username)).collect(),
            }
        }
        fn user_revoked_keeping(
            &self,
            username: &str,
            seq: u64,
            revoked: &Revoked,
            _: &[UserSession],
            streams: &[Stream],
        ) -> Effects {
            self.user_revoked(username, seq, revoked, streams)
        }
    }

    /// A poll stream of the revocation feed for receiver `client_id`.
    fn stream(client_id: &str) -> Stream {
        let body = serde_json::json!({ "delivery": { "method": tenure::ssf::POLL },
            "events_requested": [tenure::ssf::SESSION_REVOKED] });
        Stream::create(client_id, body.as_object().expect("object"), "http://iss", T0).expect("valid")
    }

    async fn targets(store: &tenure::store::PgStore) -> Vec<String> {
        store.events_page(None, 100).await.expect("events").into_iter().rev().map(|(_, e)| e.target).collect()
    }

    fn family(id: &str) -> Family {
        Family {
            id: id.into(),
            salt: "salt".into(),
            sid: SID.into(),
            username: "alice".into(),
            client_id: "web".into(),
            scope: "openid".into(),
            auth_time: T0,
            remember_me: false,
            created_at: T0,
            generation: 1,
            rotated_at: T0,
            active_at: None,
            issues_refresh_tokens: true,
            revoked: None,
            jkt: None,
        }
    }

    fn code() -> AuthCode {
        AuthCode {
            client_id: "web".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_given: true,
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            sid: SID.into(),
            username: "alice".into(),
            auth_time: T0,
            remember_me: false,
            issued_at: T0,
            redeemed_family: None,
            dpop_jkt: None,
        }
    }

    fn session() -> UserSession {
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        s.sid = SID.into();
        s
    }

    fn rotate_at(now: UnixTime, grace: Secs) -> impl Fn(&Family, Option<&UserSession>) -> RefreshDecision {
        move |f, _| decide_refresh(f, 1, now, grace, None, Activity::Interactive)
    }

    #[tokio::test]
    async fn a_user_change_writes_its_revocation_fallout_and_event_in_one_step() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        let e = AuditEvent::new(UnixTime(100), EventKind::UserDeleted, "root", "user:bob");
        assert!(!store.write_user("bob", None, None, &Recorder, &e).await.expect("write"));
        assert!(store.queued_sets("rs", 10).await.expect("queue").is_empty(), "nothing revoked, nothing queued");
        store.put_ssf_stream(&stream("rs")).await.expect("stream");
        let revoked = Revoked { at: UnixTime(100), reason: "user_deleted".into(), by: None };
        store.write_user("bob", None, Some(&revoked), &Recorder, &e).await.expect("write");
        assert_eq!(store.queued_sets("rs", 10).await.expect("queue").len(), 1);
        assert_eq!(store.due_deliveries(UnixTime(100), 10).await.expect("outbox").len(), 1, "the logout fan-out");
        assert_eq!(targets(&store).await, ["user:bob", "user:bob", "user:bob"]);
    }

    /// A family killed by a reuse hands the feed's streams, read in the
    /// killing transaction, to its fallout.
    #[tokio::test]
    async fn a_kill_reads_the_feed_streams_in_its_transaction() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        store.put_ssf_stream(&stream("rs")).await.expect("stream");
        store.put_session(&session(), T0.plus(Secs::days(30))).await.expect("put");
        store.put_code(b"k", &code()).await.expect("put");
        store.redeem_code(b"k", &family("f"), T0.plus(Secs::days(30)), T0, &NoFallout).await.expect("redeem");
        let later = T0.plus(Secs::new(5));
        store.refresh("f", rotate_at(later, Secs::ZERO), &Recorder).await.expect("rotate");
        let killed = store.refresh("f", rotate_at(later, Secs::ZERO), &Recorder).await.expect("reuse");
        assert!(matches!(killed, Some(RefreshDecision::Reuse(_))), "{killed:?}");
        assert_eq!(targets(&store).await, ["family:f streams:rs"]);
    }

    /// SPEC 12: connections the server ended (a restart, a failover,
    /// `pg_terminate_backend`) are not handed out again; a request that
    /// meets one fails as `Unavailable` (a 503, never a 500), and the pool
    /// opens new connections by itself.
    #[tokio::test]
    async fn connections_the_server_ended_are_replaced_and_meeting_one_is_unavailable() {
        use tenure::store::StoreError;
        let Some((db, store)) = postgres::migrated_store().await else { return };
        store.put_session(&session(), T0.plus(Secs::days(30))).await.expect("put");
        // Several pooled connections, idle.
        let (a, b, c, d) = tokio::join!(store.session(SID), store.session(SID), store.session(SID), store.session(SID));
        for read in [a, b, c, d] {
            assert!(read.expect("read").is_some());
        }
        let admin = db.client().await;
        let ended: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'tenure') t",
                &[],
            )
            .await
            .expect("terminate")
            .get(0);
        assert!(ended >= 1, "the store's connections were ended");
        let (mut served, mut unavailable) = (0, 0);
        for _ in 0..8 {
            match store.session(SID).await {
                Ok(found) => {
                    assert!(found.is_some());
                    served += 1;
                }
                Err(StoreError::Unavailable(_)) => unavailable += 1,
                Err(e) => panic!("a dead connection is the database not answering, not {e}"),
            }
        }
        assert!(unavailable <= 1 && served >= 7, "served {served}, unavailable {unavailable}");
        assert!(store.session(SID).await.expect("the pool reconnected").is_some());
    }

    /// The sweeper deletes in batches of 512 rows per statement until none
    /// is left, and only what has expired.
    #[tokio::test]
    async fn the_sweeper_deletes_in_batches_until_done() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        for i in 0..1100u32 {
            store.put_code(&i.to_be_bytes(), &code()).await.expect("put"); // kept 10 minutes
        }
        store.put_session(&session(), T0.plus(Secs::hours(12))).await.expect("put");
        assert_eq!(store.sweep_expired(T0).await.expect("sweep"), 0);
        assert_eq!(store.sweep_expired(T0.plus(Secs::minutes(10))).await.expect("sweep"), 1100);
        assert!(store.code(&7u32.to_be_bytes()).await.expect("read").is_none());
        assert!(store.session(SID).await.expect("read").is_some(), "not expired yet");
        assert_eq!(store.sweep_expired(T0.plus(Secs::days(1))).await.expect("sweep"), 1);
    }
}
