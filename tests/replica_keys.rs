//! Signing keys shared through PostgreSQL (issue #9): every replica signs
//! with and publishes the same keys, sealed under `keys/master.key`; a key
//! rotated at one replica is published by every replica before any signs
//! with it. Each test gets a fresh database on the harness's throwaway
//! server (tests/support/postgres.rs); without PostgreSQL they print one
//! SKIPPED line and pass, unless TENURE_REQUIRE_EXTERNAL=1.

use std::time::Duration;

use serde_json::Value;
use tenure::clock::UnixTime;
use tenure::duration::Secs;
use tenure::store::postgres::DatabaseUrl;
use tenure::store::postgres::keys::DbKeys;
use tenure::token::SigningAlg;
use tenure::token::master_key::MasterKey;

use crate::support::kit::{ROOT_AUTOMATION, root_token};
use crate::support::postgres::{self, PgDatabase};
use crate::support::{Server, config_with, eventually, tenure};

const T0: UnixTime = UnixTime(1_700_000_000);

/// Both replicas are one issuer (behind one load balancer).
fn config() -> String {
    let clients = config_with(ROOT_AUTOMATION);
    format!("issuer = \"https://issuer.test\"\n{clients}")
}

async fn migrated(db: &PgDatabase) {
    let store = db.connect_store().await;
    store.migrate(T0).await.expect("migrate the test database");
}

fn db_keys(store: tenure::store::postgres::PgStore, db: &PgDatabase, master: u8) -> DbKeys {
    let url = DatabaseUrl::parse(&db.url).expect("url");
    let sealing = MasterKey::from_bytes(&[master; 32]).sealing_key().expect("sealing key");
    DbKeys::new(store, url, sealing)
}

/// A replica's directory holding only `master.key` (copied from `from`):
/// its signing keys must come from the database.
fn replica_dir(from: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
    std::fs::copy(from.join("master.key"), dir.path().join("keys/master.key")).expect("copy master.key");
    dir
}

async fn root(server: &Server) -> String {
    root_token(server).await
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().unwrap_or("").to_owned()).collect()
}

async fn introspect_active(server: &Server, token: &str) -> bool {
    let resp = server.post_form("/introspect", Some(("orders-api", "orders-secret")), &[("token", token)]).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["active"] == true
}

/// The end-to-end story: two `tenure serve` on one database publish the
/// same JWKS; a rotation at A is published by B within the reload interval
/// and, after the publish-ahead period, B signs with the new key and A
/// verifies B's tokens.
#[tokio::test]
async fn a_key_rotated_at_one_replica_is_published_and_used_by_the_other() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let env =
        [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str()), ("TENURE_KEY_PUBLISH_AHEAD", "4s")];
    let a = Server::start(&config(), &env);
    let b = Server::start_in(replica_dir(&a.keys_dir()), &config(), &env);
    assert!(!b.keys_dir().join("keys.json").exists(), "B keeps no key files");
    let (jwks_a, jwks_b) = (a.get_json("/jwks.json").await, b.get_json("/jwks.json").await);
    assert_eq!(jwks_a, jwks_b, "both replicas publish the same keys");
    assert_eq!(kids(&jwks_a).len(), 2, "one ES256 key and its RS256 companion: {jwks_a}");
    let old_kid = kids(&jwks_a)[0].clone();
    assert_eq!(kid(&b.cc_token().await), old_kid);

    // Rotate at A through the admin API.
    let token = root(&a).await;
    let resp = a.http.post(a.url("/admin/keys/rotate")).bearer_auth(&token).send().await.expect("rotate");
    assert_eq!(resp.status(), 201);
    let rotated: Value = resp.json().await.expect("json");
    let new_kid = rotated["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["role"] == "primary")
        .and_then(|k| k["kid"].as_str())
        .expect("a new primary key")
        .to_owned();
    // B publishes it within the reload interval (2 s), before it signs.
    let published =
        eventually(Duration::from_secs(3), || async { kids(&b.get_json("/jwks.json").await).contains(&new_kid) });
    assert!(published.await, "B did not publish the key rotated at A within 3 s");
    assert_eq!(kid(&b.cc_token().await), old_kid, "nobody signs with the new key before the publish-ahead period");

    // After the publish-ahead period B signs with it, and A verifies.
    let switched = eventually(Duration::from_secs(8), || async { kid(&b.cc_token().await) == new_kid }).await;
    assert!(switched, "B never signed with the key rotated at A");
    let minted_at_b = b.cc_token().await;
    assert_eq!(kid(&minted_at_b), new_kid);
    assert!(introspect_active(&a, &minted_at_b).await, "A verifies a token B signed with the new key");
    assert_eq!(a.get_json("/jwks.json").await, b.get_json("/jwks.json").await);
}

/// Two replicas starting together create one key set, not two.
#[tokio::test]
async fn two_replicas_starting_together_create_one_key() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let (a, b) = (db_keys(db.connect_store().await, &db, 7), db_keys(db.connect_store().await, &db, 7));
    let ahead = Secs::minutes(10);
    let (ra, rb) =
        tokio::join!(a.ensure_active(SigningAlg::ES256, T0, ahead), b.ensure_active(SigningAlg::ES256, T0, ahead));
    let (ra, rb) = (ra.expect("A starts"), rb.expect("B starts"));
    assert_eq!(ra.len() + rb.len(), 2, "one ES256 key and one RS256 companion in all: {ra:?} {rb:?}");
    assert!(ra.is_empty() || rb.is_empty(), "one replica created them, the other found them");
    let rows: i64 = db.client().await.query_one("SELECT count(*) FROM signing_keys", &[]).await.expect("count").get(0);
    assert_eq!(rows, 2);
    let (sa, sb) = (a.load().await.expect("load at A"), b.load().await.expect("load at B"));
    assert_eq!(sa.active(T0).kid, sb.active(T0).kid);
    assert_eq!(sa.jwks(T0, Secs::minutes(35)), sb.jwks(T0, Secs::minutes(35)));
}

/// The epoch moves with each change, so the other replicas reload; the
/// private keys in the database are sealed, never plain PKCS#8.
#[tokio::test]
async fn each_key_change_moves_the_epoch_and_private_keys_are_sealed() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let (a, b) = (db_keys(db.connect_store().await, &db, 7), db_keys(db.connect_store().await, &db, 7));
    let ahead = Secs::minutes(10);
    a.ensure_active(SigningAlg::ES256, T0, ahead).await.expect("first start");
    let before = b.epoch().await.expect("epoch");
    assert!(a.ensure_active(SigningAlg::ES256, T0, ahead).await.expect("restart").is_empty());
    assert_eq!(b.epoch().await.expect("epoch"), before, "a restart that changes nothing keeps the epoch");
    let r = a.rotate(SigningAlg::ES256, T0.plus(Secs::new(5)), ahead).await.expect("rotate");
    let after_rotate = b.epoch().await.expect("epoch");
    assert!(after_rotate > before);
    let set = b.load().await.expect("B reloads");
    assert!(set.find(&r.primary.kid, T0.plus(Secs::new(5)), Secs::minutes(35)).is_some(), "published at B");
    assert_ne!(set.active(T0.plus(Secs::new(5))).kid, r.primary.kid, "not signing before the period");
    assert_eq!(set.active(T0.plus(Secs::new(5)).plus(ahead)).kid, r.primary.kid);

    // Revocation at B: A sees it; the private key is gone from the row.
    let revoked = b.revoke(&r.primary.kid, T0.plus(Secs::new(6))).await.expect("revoke");
    assert!(!revoked.was_active);
    assert!(b.epoch().await.expect("epoch") > after_rotate);
    assert!(a.load().await.expect("load").find(&r.primary.kid, T0.plus(Secs::new(6)), Secs::minutes(35)).is_none());
    let client = db.client().await;
    let gone = client
        .query_one("SELECT sealed IS NULL AND nonce IS NULL FROM signing_keys WHERE kid = $1", &[&r.primary.kid])
        .await
        .expect("row");
    assert!(gone.get::<_, bool>(0), "a revoked key's private half is deleted");
    for row in client.query("SELECT sealed FROM signing_keys WHERE sealed IS NOT NULL", &[]).await.expect("rows") {
        let sealed: Vec<u8> = row.get(0);
        // PKCS#8 DER starts with a SEQUENCE (0x30); sealed bytes are random.
        assert!(!sealed.windows(8).any(|w| w == [0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a]), "plain PKCS#8");
    }
}

/// A replica with another master.key refuses to start and says why.
#[tokio::test]
async fn a_replica_with_another_master_key_refuses_to_start() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    db_keys(db.connect_store().await, &db, 7)
        .ensure_active(SigningAlg::ES256, T0, Secs::minutes(10))
        .await
        .expect("keys sealed under master key 7");
    let err = db_keys(db.connect_store().await, &db, 8).load().await.expect_err("another master key").to_string();
    assert!(err.contains("sealed under another keys/master.key"), "{err}");

    // The server says the same at start-up.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tenure.toml"), config()).expect("config");
    std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
    std::fs::write(dir.path().join("keys/master.key"), [8u8; 32]).expect("another master.key");
    let out = tenure()
        .arg("serve")
        .current_dir(dir.path())
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", &db.url)
        .env("TENURE_ISSUER", "http://tenure.replica-keys.test")
        .output()
        .expect("run tenure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("were sealed under another keys/master.key"), "{stderr}");
}

/// A replica started without `keys/master.key` on a database that already
/// holds sealed keys refuses to start, names the file to mount, and writes
/// no master key of its own (which could never open those keys).
#[tokio::test]
async fn a_replica_without_the_master_key_refuses_and_writes_none() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    db_keys(db.connect_store().await, &db, 7)
        .ensure_active(SigningAlg::ES256, T0, Secs::minutes(10))
        .await
        .expect("keys sealed under master key 7");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tenure.toml"), config()).expect("config");
    for command in [&["serve"][..], &["keys", "list"][..]] {
        let out = tenure()
            .args(command)
            .current_dir(dir.path())
            .env("TENURE_STORE", "postgres")
            .env("TENURE_DATABASE_URL", &db.url)
            .env("TENURE_ISSUER", "http://tenure.replica-keys.test")
            .output()
            .expect("run tenure");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command:?} started without the master key");
        assert!(stderr.contains("holds signing keys sealed under a master key"), "{command:?}: {stderr}");
        assert!(stderr.contains("keys/master.key does not exist: mount the master.key"), "{command:?}: {stderr}");
        assert!(!dir.path().join("keys/master.key").exists(), "{command:?} wrote a master key of its own");
    }

    // On an empty database the first replica creates it.
    let fresh = postgres::database().await.expect("a second database");
    migrated(&fresh).await;
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", fresh.url.as_str())];
    let first = Server::start(&config(), &env);
    assert!(first.keys_dir().join("master.key").exists(), "a first start creates the master key");
}

/// With PostgreSQL, a publish-ahead shorter than the reload interval could
/// let one replica sign with a key another does not publish yet.
#[tokio::test]
async fn a_publish_ahead_shorter_than_the_reload_interval_is_refused_with_postgres() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tenure.toml"), config()).expect("config");
    let out = tenure()
        .arg("serve")
        .current_dir(dir.path())
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", &db.url)
        .env("TENURE_ISSUER", "http://tenure.replica-keys.test")
        .env("TENURE_KEY_PUBLISH_AHEAD", "1s")
        .output()
        .expect("run tenure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("key_publish_ahead = 1s") && stderr.contains("2s"), "names both: {stderr}");
}

/// `tenure keys` works on the database with store = "postgres".
#[tokio::test]
async fn the_keys_command_works_on_the_database() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tenure.toml"), config()).expect("config");
    let run = |args: &[&str]| {
        tenure()
            .args(args)
            .current_dir(dir.path())
            .env("TENURE_STORE", "postgres")
            .env("TENURE_DATABASE_URL", &db.url)
            .output()
            .expect("run tenure")
    };
    let rotated = run(&["keys", "rotate"]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let listed = String::from_utf8_lossy(&run(&["keys", "list"]).stdout).into_owned();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(!dir.path().join("keys/keys.json").exists(), "no manifest file: the keys are in the database");
    let rows: i64 = db.client().await.query_one("SELECT count(*) FROM signing_keys", &[]).await.expect("count").get(0);
    assert_eq!(rows, 2);
}

/// A key change wakes the other replicas' listeners at once (NOTIFY), not
/// only at the next epoch check.
#[tokio::test]
async fn a_key_change_is_notified_to_the_listening_replicas() {
    let Some(db) = postgres::database().await else { return };
    migrated(&db).await;
    let a = db_keys(db.connect_store().await, &db, 7);
    let b = std::sync::Arc::new(db_keys(db.connect_store().await, &db, 7));
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let listener = tokio::spawn(b.clone().listen(changed.clone()));
    // A fresh LISTEN wakes once (anything may have changed before it).
    tokio::time::timeout(Duration::from_secs(5), changed.notified()).await.expect("B listens");
    a.ensure_active(SigningAlg::ES256, T0, Secs::minutes(10)).await.expect("first start at A");
    tokio::time::timeout(Duration::from_secs(1), changed.notified()).await.expect("B is told within 1 s");
    // A change that changes nothing notifies nobody.
    assert!(a.ensure_active(SigningAlg::ES256, T0, Secs::minutes(10)).await.expect("restart").is_empty());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), changed.notified()).await.is_err(),
        "a spurious notification"
    );
    listener.abort();
}
