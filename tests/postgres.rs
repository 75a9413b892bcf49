//! The PostgreSQL store from the operator's side (SPEC 12): `tenure
//! migrate` creates the schema once, `serve` refuses a database whose schema
//! it does not know, TLS is asked for by the URL and its failure says so, and
//! the URL's password never reaches the output.
//!
//! Each test gets a fresh database on the harness's throwaway server
//! (tests/support/postgres.rs); without PostgreSQL they print one SKIPPED
//! line and pass, unless TENURE_REQUIRE_EXTERNAL=1.

use std::process::Output;

use crate::support::postgres::{self, PgDatabase};
use crate::support::tenure;
use tenure::pg_store::migrate::{MIGRATIONS, latest};

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

#[tokio::test]
async fn the_password_in_the_url_never_reaches_the_output() {
    let Some(db) = postgres::database().await else { return };
    // The harness trusts local connections, so any password is accepted.
    let url = db.url.replacen("postgres@", "postgres:pw-Zq81-never-shown@", 1);
    assert_ne!(url, db.url, "the URL has a user to give a password to");
    for args in [&["migrate"][..], &["serve"][..], &["check-config"][..]] {
        let out = run(args, &url);
        let (stdout, stderr) = text(&out);
        assert!(!stdout.contains("pw-Zq81") && !stderr.contains("pw-Zq81"), "{args:?}: {stdout}{stderr}");
    }
    // A server that is not there: the connection error names the database.
    let mut closed = url::Url::parse(&url).expect("url");
    closed.set_port(Some(1)).expect("port");
    let bad = run(&["serve"], closed.as_str());
    let (stdout, stderr) = text(&bad);
    assert!(!bad.status.success());
    assert!(stderr.contains("cannot connect to the database postgres@127.0.0.1:1/"), "{stderr}");
    assert!(!stdout.contains("pw-Zq81") && !stderr.contains("pw-Zq81"), "{stdout}{stderr}");
}

#[tokio::test]
async fn the_library_migrates_and_checks_the_store() {
    let Some((_db, store)) = postgres::migrated_store().await else { return };
    store.check().await.expect("the database answers");
    assert_eq!(store.require_current_schema().await.expect("current"), 1);
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

// ---- The store's operations on PostgreSQL, as the sled store's unit tests
// check them (store/sled.rs); the backend-generic contract suite runs on
// both stores once the store trait takes PostgreSQL. ----

mod store_ops {
    use tenure::audit::AuditEvent;
    use tenure::clock::UnixTime;
    use tenure::duration::Secs;
    use tenure::logout::{Delivery, DeliveryKind};
    use tenure::session::Revoked;
    use tenure::session::code::AuthCode;
    use tenure::session::family::{Activity, Family, RefreshDecision, decide_refresh};
    use tenure::session::user_session::{MAX_FAMILIES_PER_CLIENT, UserSession};
    use tenure::ssf::{QueuedSet, SetEvent, SetSubject};
    use tenure::store::Redemption;

    use crate::support::postgres;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const SID: &str = "0123456789abcdef0123456789abcdef";

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

    fn rotate_at(now: UnixTime, grace: Secs) -> impl Fn(&Family, Option<&UserSession>) -> RefreshDecision {
        move |f, _| decide_refresh(f, 1, now, grace, true, Activity::Interactive)
    }

    #[tokio::test]
    async fn a_code_redeems_once_and_its_replay_revokes_the_family() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        store.put_code(b"k", &code()).await.expect("put");
        let keep = T0.plus(Secs::days(30));
        let first = store.redeem_code(b"k", &family("f1"), keep, T0).await.expect("redeem");
        assert_eq!(first, Redemption::Redeemed { superseded: vec![] });
        assert_eq!(store.session_families(SID).await.expect("index").len(), 1);
        let replay = store.redeem_code(b"k", &family("f2"), keep, T0.plus(Secs::new(30))).await.expect("redeem");
        assert_eq!(replay, Redemption::Replayed { revoked_family: Some("f1".into()) });
        let f1 = store.family("f1").await.expect("read").expect("exists");
        assert_eq!(f1.revoked.map(|r| r.reason).as_deref(), Some("authorization_code_replay"));
        assert!(store.family("f2").await.expect("read").is_none(), "the replay created nothing");
        let none = store.redeem_code(b"nope", &family("f3"), keep, T0).await.expect("redeem");
        assert_eq!(none, Redemption::NotFound);
    }

    #[tokio::test]
    async fn a_session_keeps_the_newest_families_of_a_client_and_records_activity() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        let (mut session, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        session.sid = SID.into();
        let keep = T0.plus(Secs::days(30));
        store.put_session(&session, keep).await.expect("put");
        let mut superseded = Vec::new();
        for i in 0..(MAX_FAMILIES_PER_CLIENT + 2) {
            let key = format!("k{i}");
            store.put_code(key.as_bytes(), &code()).await.expect("put");
            let at = T0.plus(Secs::new(i as u64));
            let mut f = family(&format!("f{i}"));
            (f.created_at, f.rotated_at) = (at, at);
            match store.redeem_code(key.as_bytes(), &f, keep, at).await.expect("redeem") {
                Redemption::Redeemed { superseded: s } => superseded.extend(s.into_iter().map(|f| f.id)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(superseded, ["f0", "f1"], "the oldest go first");
        let f0 = store.family("f0").await.expect("read").expect("kept for the audit trail");
        assert_eq!(f0.revoked.map(|r| r.reason).as_deref(), Some("superseded"));
        let live: Vec<String> = store.session_families(SID).await.expect("index").into_iter().map(|f| f.id).collect();
        assert_eq!(live, ["f2", "f3", "f4", "f5", "f6"]);
        assert_eq!(store.session(SID).await.expect("read").expect("exists").last_active, T0.plus(Secs::new(6)));

        let later = T0.plus(Secs::minutes(20));
        let d = store.refresh("f6", rotate_at(later, Secs::ZERO)).await.expect("refresh");
        assert!(matches!(d, Some(RefreshDecision::Rotate(ref f)) if f.generation == 2), "{d:?}");
        assert_eq!(store.family("f6").await.expect("read").expect("exists").generation, 2);
        assert_eq!(store.session(SID).await.expect("read").expect("exists").last_active, later);
        let earlier = T0.plus(Secs::minutes(10));
        store.refresh("f5", rotate_at(earlier, Secs::ZERO)).await.expect("refresh");
        assert_eq!(store.session(SID).await.expect("read").expect("exists").last_active, later, "never backwards");
        assert!(store.refresh("nope", rotate_at(later, Secs::ZERO)).await.expect("refresh").is_none());
    }

    async fn concurrent_refreshes(grace: Secs) -> Option<Vec<RefreshDecision>> {
        let (_db, store) = postgres::migrated_store().await?;
        let (mut session, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        session.sid = SID.into();
        store.put_session(&session, T0.plus(Secs::days(30))).await.expect("put");
        store.put_code(b"k", &code()).await.expect("put");
        store.redeem_code(b"k", &family("f"), T0.plus(Secs::days(30)), T0).await.expect("redeem");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.refresh("f", rotate_at(T0.plus(Secs::new(5)), grace)).await.expect("refresh").expect("exists")
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("join"));
        }
        Some(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_uses_at_most_one_rotates_without_grace() {
        let Some(decisions) = concurrent_refreshes(Secs::ZERO).await else { return };
        assert_eq!(decisions.iter().filter(|d| matches!(d, RefreshDecision::Rotate(_))).count(), 1, "{decisions:?}");
        assert!(decisions.iter().any(|d| matches!(d, RefreshDecision::Reuse(_))), "the second use is a reuse");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_uses_all_get_the_same_successor_with_grace() {
        let Some(decisions) = concurrent_refreshes(Secs::new(30)).await else { return };
        assert_eq!(decisions.iter().filter(|d| matches!(d, RefreshDecision::Rotate(_))).count(), 1);
        for d in &decisions {
            match d {
                RefreshDecision::Rotate(f) | RefreshDecision::Grace(f) => assert_eq!(f.generation, 2),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn revoking_a_user_is_one_marker_that_spares_later_sign_ins() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        let keep = T0.plus(Secs::days(30));
        let mut sids = Vec::new();
        for _ in 0..3 {
            let (s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
            store.put_session(&s, keep).await.expect("put");
            sids.push(s.sid);
        }
        let (bob, _) = UserSession::start("bob", false, None, None, T0).expect("rng");
        store.put_session(&bob, keep).await.expect("put");
        store.revoke_user_sessions("alice", Revoked { at: T0, reason: "compromised".into() }).await.expect("revoke");
        for sid in &sids {
            let s = store.session(sid).await.expect("read").expect("exists");
            assert_eq!(s.revoked.map(|r| r.reason).as_deref(), Some("compromised"));
        }
        assert!(store.session(&bob.sid).await.expect("read").expect("exists").revoked.is_none());
        let (again, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        store.put_session(&again, keep).await.expect("put");
        assert!(store.session(&again.sid).await.expect("read").expect("exists").revoked.is_none());
        let listed = store.user_sessions("alice").await.expect("list");
        assert_eq!((listed.len(), listed.iter().filter(|s| s.revoked.is_none()).count()), (4, 1));
        // Re-storing an old copy does not lift it past the marker, nor does
        // an update.
        let mut copy = store.session(&sids[1]).await.expect("read").expect("exists");
        (copy.revoked, copy.seq) = (None, 0);
        store.put_session(&copy, keep).await.expect("put");
        assert!(store.session(&sids[1]).await.expect("read").expect("exists").revoked.is_some());
        let touched = store
            .update_session(&sids[0], |s| {
                s.last_active = T0.plus(Secs::new(1));
                s.revoked.is_none()
            })
            .await
            .expect("update")
            .expect("exists");
        assert!(touched.revoked.is_some());
        assert_eq!(store.all_sessions().await.expect("all").len(), 5);
    }

    #[tokio::test]
    async fn the_audit_log_pages_newest_first_and_is_pruned() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        for i in 0..5u64 {
            store
                .append_audit(&AuditEvent::new(
                    T0.plus(Secs::days(i)),
                    tenure::audit::EventKind::SignIn,
                    "alice",
                    "user:alice",
                ))
                .await
                .expect("append");
        }
        let first = store.audit_page(None, 2).await.expect("page");
        let days = |page: &[(u64, AuditEvent)]| {
            page.iter().map(|(_, e)| (e.at.as_secs() - T0.as_secs()) / 86_400).collect::<Vec<_>>()
        };
        assert_eq!(days(&first), vec![4, 3]);
        let second = store.audit_page(Some(first[1].0), 2).await.expect("page");
        assert_eq!(days(&second), vec![2, 1]);
        let id = store
            .append_audit_id(&AuditEvent::new(T0, tenure::audit::EventKind::SignInFailed, "x", "user:x"))
            .await
            .expect("append");
        assert!(
            store
                .replace_audit(id, &AuditEvent::new(T0, tenure::audit::EventKind::SignInFailed, "x", "user:y"))
                .await
                .expect("replace")
        );
        assert!(
            !store
                .replace_audit(id + 1000, &AuditEvent::new(T0, tenure::audit::EventKind::SignIn, "a", "t"))
                .await
                .expect("replace")
        );
        store.revoke_user_sessions("alice", Revoked { at: T0, reason: "x".into() }).await.expect("marker");
        let removed = store.prune_history(T0.plus(Secs::days(2)), T0.plus(Secs::days(1))).await.expect("prune");
        assert_eq!(removed, 4, "two events, the replaced one, and alice's marker");
        assert_eq!(store.audit_page(None, 10).await.expect("page").len(), 3);
    }

    #[tokio::test]
    async fn the_outbox_and_the_feed_queue_keep_order_and_reschedule() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        let d = Delivery {
            kind: DeliveryKind::Logout {
                client_id: "web".into(),
                uri: "http://127.0.0.1:1/bc".into(),
                sid: "s".into(),
            },
            sub: "alice".into(),
            created_at: T0,
            attempts: 0,
            next_attempt_at: T0,
        };
        store.enqueue_deliveries(std::slice::from_ref(&d)).await.expect("enqueue");
        let due = store.due_deliveries(T0, 10).await.expect("due");
        let (id, old) = &due[0];
        let retry = Delivery { attempts: 1, next_attempt_at: T0.plus(Secs::new(15)), ..old.clone() };
        store.finish_attempt(*id, old, Some(&retry)).await.expect("reschedule");
        assert!(store.due_deliveries(T0.plus(Secs::new(14)), 10).await.expect("due").is_empty());
        let due = store.due_deliveries(T0.plus(Secs::new(15)), 10).await.expect("due");
        assert_eq!(due[0].1.attempts, 1);
        store.finish_attempt(due[0].0, &due[0].1, None).await.expect("done");
        assert!(store.due_deliveries(T0.plus(Secs::days(1)), 10).await.expect("due").is_empty());

        let set = |client: &str, user: &str, at: u64| {
            let event = SetEvent::SessionRevoked {
                reason: "admin".into(),
                initiating_entity: None,
                event_timestamp: UnixTime(at),
            };
            QueuedSet::new(client, SetSubject::User { user: user.into() }, event, UnixTime(at))
        };
        let (a1, a2, b1) = (set("a", "u1", 100), set("a", "u2", 101), set("b", "u1", 100));
        store.enqueue_sets(&[a1.clone(), b1.clone(), a2.clone()]).await.expect("enqueue");
        let a: Vec<QueuedSet> = store.queued_sets("a", 10).await.expect("queue").into_iter().map(|(_, s)| s).collect();
        assert_eq!(a, vec![a1.clone(), a2.clone()]);
        let (id, first) = store.queued_sets("a", 1).await.expect("queue").remove(0);
        store.reschedule_set(id, &first.after_failure(UnixTime(100))).await.expect("reschedule");
        assert_eq!(store.queued_sets("a", 1).await.expect("queue")[0].1.attempts, 1);
        assert_eq!(store.remove_sets("a", &[a1.jti.clone(), b1.jti.clone()]).await.expect("ack"), 1, "only a's own");
        assert_eq!(store.prune_sets(UnixTime(101)).await.expect("prune"), 1, "b1 was issued at 100");
        assert_eq!(store.clear_sets("a").await.expect("clear"), 1);
    }

    #[tokio::test]
    async fn a_user_revocation_queues_its_fan_out_and_feed_events_in_the_same_step() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        let event = AuditEvent::new(UnixTime(100), tenure::audit::EventKind::UserDeleted, "root", "user:bob");
        let set = QueuedSet::new(
            "rs",
            SetSubject::User { user: "bob".into() },
            SetEvent::SessionRevoked { reason: "x".into(), initiating_entity: None, event_timestamp: UnixTime(100) },
            UnixTime(100),
        );
        assert!(!store.write_user("bob", None, None, std::slice::from_ref(&set), &event).await.expect("write"));
        assert!(store.queued_sets("rs", 10).await.expect("queue").is_empty(), "nothing revoked, nothing queued");
        let revoked = Revoked { at: UnixTime(100), reason: "user_deleted".into() };
        store.write_user("bob", None, Some(revoked), std::slice::from_ref(&set), &event).await.expect("write");
        assert_eq!(store.queued_sets("rs", 10).await.expect("queue").len(), 1);
        assert_eq!(store.due_deliveries(UnixTime(100), 10).await.expect("outbox").len(), 1, "the logout fan-out");
        assert_eq!(store.audit_page(None, 10).await.expect("audit").len(), 2);
    }

    #[tokio::test]
    async fn the_sweeper_removes_exactly_what_expired() {
        let Some((_db, store)) = postgres::migrated_store().await else { return };
        store.put_code(b"c1", &code()).await.expect("put"); // kept 10 minutes
        let (mut s, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
        s.sid = SID.into();
        store.put_session(&s, T0.plus(Secs::hours(12))).await.expect("put");
        assert_eq!(store.sweep_expired(T0).await.expect("sweep"), 0);
        assert_eq!(store.sweep_expired(T0.plus(Secs::minutes(10))).await.expect("sweep"), 1);
        assert!(store.code(b"c1").await.expect("read").is_none());
        assert!(store.session(SID).await.expect("read").is_some());
        assert_eq!(store.sweep_expired(T0.plus(Secs::days(1))).await.expect("sweep"), 1);
        assert!(store.session(SID).await.expect("read").is_none());
    }
}
