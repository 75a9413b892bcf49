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
    assert!(stdout.contains("now at schema version 1"), "{stdout}");
    assert_eq!(versions(&db).await, vec![(1, "initial".to_owned())]);
    // The tables of the records are there.
    let client = db.client().await;
    for table in ["user_sessions", "families", "auth_codes", "audit_events", "logout_outbox", "ssf_queue"] {
        client.query(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap_or_else(|e| panic!("{table}: {e}"));
    }

    let second = run(&["migrate"], &db.url);
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "second migrate failed: {stderr}");
    assert!(stdout.contains("schema version 1, the current one: nothing to do"), "{stdout}");
    assert_eq!(versions(&db).await, vec![(1, "initial".to_owned())], "nothing applied twice");
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_names_the_fix() {
    let Some(db) = postgres::database().await else { return };
    let out = run(&["serve"], &db.url);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "serve started on an empty database: {stdout}");
    assert!(stderr.contains("no tenure schema"), "{stderr}");
    assert!(stderr.contains("schema version 1"), "names the version it needs: {stderr}");
    assert!(stderr.contains("run `tenure migrate`"), "names the fix: {stderr}");
    assert!(!stdout.contains("tenure listening"), "it never listened");
}

#[tokio::test]
async fn serve_refuses_a_newer_or_foreign_schema() {
    let Some(db) = postgres::database().await else { return };
    assert!(run(&["migrate"], &db.url).status.success());
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO schema_migrations VALUES (2, 'from_the_future', 'x', 0)")
        .await
        .expect("insert a newer version");
    let out = run(&["serve"], &db.url);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("schema version 2, newer than version 1"), "{stderr}");
    // migrate does not touch it either.
    let out = run(&["migrate"], &db.url);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("newer than version 1"), "{}", text(&out).1);

    // A version 1 that is not tenure's (edited, or another program's).
    client.batch_execute("DELETE FROM schema_migrations WHERE version = 2").await.expect("delete");
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
