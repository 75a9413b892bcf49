//! `tenure admin ...` end to end (SPEC 11): the real binary run as a process
//! against a real server, signed in as a service account by client
//! credentials. Tables for people, `--output json` equal to what the API
//! answers, the server's own error messages, non-zero exit statuses.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::kit::{self, cc_admin_token, user, web_client};
use crate::support::{BIN, Server, config_with};

const CLI_ID: &str = "tenure-cli";
const CLI_SECRET: &str = "tenure-cli-secret";

fn config() -> String {
    config_with(&format!(
        r#"
[[clients]]
id = "{CLI_ID}"
secret = "{CLI_SECRET}"
grant_types = ["client_credentials"]
scopes = ["admin"]
permissions = ["system:administer"]
{}{}{}"#,
        web_client(&["openid", "profile"]),
        user("alice", &[]),
        user("bob", &[])
    ))
}

/// What a run of `tenure admin` gave.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Exit status 0; the stdout.
    fn ok(self) -> String {
        assert_eq!(self.status, Some(0), "tenure admin failed:\n{}{}", self.stdout, self.stderr);
        self.stdout
    }

    /// Exit status 0 and stdout parsed as JSON.
    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }
}

/// `tenure admin ARGS` with the service account in the environment, in
/// the server's directory (where its tenure.toml is: the CLI must not read it).
fn admin(server: &Server, args: &[&str]) -> Run {
    admin_as(server, &[("TENURE_CLIENT_SECRET", CLI_SECRET)], args, None)
}

/// `tenure admin ARGS` with `env` (beside TENURE_URL and TENURE_CLIENT_ID)
/// and `stdin`.
fn admin_as(server: &Server, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.arg("admin")
        .args(args)
        .current_dir(server.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_URL", &server.base)
        .env("TENURE_CLIENT_ID", CLI_ID)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run tenure admin");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    Run::from(child.wait_with_output().expect("tenure admin ends"))
}

/// A client-credentials token of the CLI's service account, to ask the API
/// directly what the CLI should have shown.
async fn api_token(server: &Server) -> String {
    cc_admin_token(server, CLI_ID, CLI_SECRET).await
}

async fn api_get(server: &Server, path: &str) -> Value {
    let token = api_token(server).await;
    let resp = server.http.get(server.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

/// Sign `user` in at `web` from a new browser: a new session; its sid.
async fn sign_in(server: &Server, user: &str) -> String {
    kit::sign_in(server, user, &format!("{user}-password"), "openid").await.sid()
}

/// The lines of a table whose first cell is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn settings_get_set_and_reset_as_tables_and_as_the_apis_json() {
    let server = Server::start(&config(), &[]);
    let table = admin(&server, &["settings", "get"]).ok();
    assert_eq!(row(&table, "SETTING"), ["SETTING", "VALUE", "SOURCE"]);
    assert_eq!(row(&table, "idle_timeout"), ["idle_timeout", "30m", "default"], "durations as people write them");
    assert_eq!(row(&table, "remember_me_max_lifetime"), ["remember_me_max_lifetime", "20d", "default"]);

    let table = admin(&server, &["settings", "set", "idle_timeout=45m", "max_lifetime=1d12h"]).ok();
    assert!(table.starts_with("session settings changed\n"), "{table}");
    assert_eq!(row(&table, "idle_timeout"), ["idle_timeout", "45m", "admin"]);
    assert_eq!(row(&table, "max_lifetime"), ["max_lifetime", "1d12h", "admin"]);
    let api = api_get(&server, "/admin/settings/session").await;
    assert_eq!(api["idle_timeout"], 2700);
    assert_eq!(api["max_lifetime"], 129_600);
    assert_eq!(admin(&server, &["settings", "get", "--output", "json"]).json(), api, "the server's JSON");

    let json = admin(&server, &["-o", "json", "settings", "set", "idle_timeout=off"]).json();
    assert_eq!(json["idle_timeout"], "off");
    assert_eq!(row(&admin(&server, &["settings", "get"]).ok(), "idle_timeout"), ["idle_timeout", "off", "admin"]);

    let table = admin(&server, &["settings", "reset"]).ok();
    assert_eq!(row(&table, "idle_timeout"), ["idle_timeout", "30m", "default"]);
    assert_eq!(api_get(&server, "/admin/settings/session").await["sources"]["max_lifetime"], "default");
}

#[tokio::test]
async fn a_bad_duration_is_refused_naming_it_before_anything_is_sent() {
    let server = Server::start(&config(), &[]);
    let run = admin(&server, &["settings", "set", "idle_timeout=45x", "max_lifetime=8h"]);
    assert_eq!(run.status, Some(2));
    assert_eq!(
        run.stderr.trim_end(),
        "tenure admin: idle_timeout: \"45x\" is not a duration: unknown unit \
         (use whole seconds like 1800, or units like 30m, 12h, 7d, 1d12h)"
    );
    assert!(run.stdout.is_empty());
    let run = admin(&server, &["settings", "preview", "idle_timout=45m"]);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("unknown setting \"idle_timout\"; known settings: idle_timeout,"), "{}", run.stderr);
    // Nothing reached the server: no change, no audit event.
    let api = api_get(&server, "/admin/settings/session").await;
    assert_eq!(api["sources"]["max_lifetime"], "default");
    assert_eq!(api_get(&server, "/admin/audit").await["events"], serde_json::json!([]));
}

#[tokio::test]
async fn the_servers_refusals_come_through_with_its_message_and_a_failing_status() {
    let server = Server::start(&config(), &[]);
    // Validation by the server (SPEC 3: idle <= max).
    let run = admin(&server, &["settings", "set", "idle_timeout=2d"]);
    assert_eq!(run.status, Some(1));
    assert!(
        run.stderr.starts_with("tenure admin: PUT /admin/settings/session: session.idle_timeout (2d) must not exceed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.trim_end().ends_with("(invalid_setting, HTTP 400)"), "{}", run.stderr);
    // An unknown user: 404 with the server's message.
    let run = admin(&server, &["sessions", "list", "nobody"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("no user named \"nobody\" (not_found, HTTP 404)"), "{}", run.stderr);
    // A service account without system:administer: 403.
    let run = admin_as(
        &server,
        &[("TENURE_CLIENT_SECRET", "automation-secret")],
        &["--client-id", "automation", "settings", "get"],
        None,
    );
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("HTTP 403"), "{}", run.stderr);
    assert!(run.stderr.contains("system:administer"), "names the missing permission: {}", run.stderr);
}

#[tokio::test]
async fn a_wrong_secret_fails_with_the_token_endpoints_message() {
    let server = Server::start(&config(), &[]);
    let run = admin_as(&server, &[("TENURE_CLIENT_SECRET", "not-the-secret")], &["settings", "get"], None);
    assert_eq!(run.status, Some(1));
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .starts_with(&format!("tenure admin: getting a token for client \"{CLI_ID}\" at {}/token: ", server.base)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.trim_end().ends_with("(invalid_client, HTTP 401)"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-secret"), "the secret is never printed");

    // The secret from a file works; a missing secret is a usage error.
    let file = server.path().join("cli-secret");
    std::fs::write(&file, format!("{CLI_SECRET}\n")).unwrap();
    let path = file.to_string_lossy().into_owned();
    admin_as(&server, &[("TENURE_CLIENT_SECRET_FILE", &path)], &["settings", "get"], None).ok();
    let run = admin_as(&server, &[], &["settings", "get"], None);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("set TENURE_CLIENT_SECRET, or TENURE_CLIENT_SECRET_FILE"), "{}", run.stderr);
}

#[tokio::test]
async fn an_unreachable_issuer_fails_with_a_clear_message() {
    let server = Server::start(&config(), &[]);
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let run = admin(&server, &["--url", &url, "keys", "list"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    let run = admin(&server, &["--url", "ftp://example.com", "keys", "list"]);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("TENURE_URL (or --url) must be the issuer's http(s) URL"), "{}", run.stderr);
}

#[tokio::test]
async fn behind_a_proxy_the_secret_goes_only_to_the_host_named() {
    // The issuer is a public https URL the test cannot reach: discovery's
    // token endpoint points there, so the CLI uses TENURE_URL + /token.
    let config = config().replacen("listen = ", "issuer = \"https://id.example.com\"\nlisten = ", 1);
    let server = Server::start(&config, &[]);
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["token_endpoint"], "https://id.example.com/token");
    let json = admin(&server, &["settings", "get", "-o", "json"]).json();
    assert_eq!(json["sources"]["idle_timeout"], "default");
}

#[tokio::test]
async fn the_server_accepts_the_clis_variables_in_its_environment() {
    let server = Server::start(
        &config(),
        &[
            ("TENURE_URL", "http://127.0.0.1:1"),
            ("TENURE_CLIENT_ID", CLI_ID),
            ("TENURE_CLIENT_SECRET", CLI_SECRET),
            ("TENURE_CLIENT_SECRET_FILE", "/nonexistent"),
        ],
    );
    assert_eq!(server.get_json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_or_all() {
    let server = Server::start(&config(), &[]);
    let first = sign_in(&server, "alice").await;
    let second = sign_in(&server, "alice").await;
    let bobs = sign_in(&server, "bob").await;

    let table = admin(&server, &["sessions", "list", "alice"]).ok();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("SID"), "{table}");
    for column in ["CLIENTS", "SIGNED IN", "LAST ACTIVE", "IDLE EXPIRES", "EXPIRES", "REMEMBER", "IP", "USER AGENT"] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let cells = row(&table, &second);
    assert_eq!(cells[1], "web");
    assert!(table.contains("in 29m") || table.contains("in 30m"), "the idle deadline, relative: {table}");
    assert!(table.contains("in 11h59m") || table.contains("in 12h"), "the absolute deadline: {table}");
    let json = admin(&server, &["sessions", "list", "alice", "--output", "json"]).json();
    assert_eq!(json, api_get(&server, "/admin/users/alice/sessions").await);
    assert_eq!(json["sessions"].as_array().unwrap().len(), 2);

    // Bob's session is not alice's: refused, and bob's session lives on.
    let run = admin(&server, &["sessions", "revoke", "alice", &bobs]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains(&format!("alice has no live session {bobs}")), "{}", run.stderr);

    let out = admin(&server, &["sessions", "revoke", "alice", &first]).ok();
    assert_eq!(out, format!("revoked session {first} of alice\n"));
    let left = api_get(&server, "/admin/users/alice/sessions").await;
    let live = |v: &serde_json::Value| -> Vec<String> {
        let sessions = v["sessions"].as_array().unwrap().iter().filter(|s| s["ended"] == false);
        sessions.map(|s| s["sid"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(live(&left), vec![second.to_string()]);
    // SPEC 14: the ended one is listed after the live ones, with why.
    assert_eq!(left["sessions"][1]["sid"], first.as_str());
    assert_eq!(left["sessions"][1]["end_reason"], "revoked");

    assert_eq!(admin(&server, &["sessions", "revoke", "alice"]).ok(), "revoked every session of alice\n");
    let listed = admin(&server, &["sessions", "list", "alice"]).ok();
    assert!(listed.starts_with("alice has no live sessions\n"), "{listed}");
    assert!(listed.contains("ENDED SID") && listed.contains(&first) && listed.contains("revoked by"), "{listed}");
    assert_eq!(api_get(&server, "/admin/users/bob/sessions").await["sessions"][0]["sid"], bobs.as_str());
    // 204 No Content: nothing to print as JSON, the status says it worked.
    assert_eq!(admin(&server, &["sessions", "revoke", "bob", "--output", "json"]).ok(), "");
    assert_eq!(live(&api_get(&server, "/admin/users/bob/sessions").await), Vec::<String>::new());
}

#[tokio::test]
async fn the_audit_log_pages_and_filters() {
    let server = Server::start(&config(), &[]);
    sign_in(&server, "alice").await;
    sign_in(&server, "bob").await;
    admin(&server, &["settings", "set", "max_lifetime=8h"]).ok();
    admin(&server, &["sessions", "revoke", "alice"]).ok();

    let json = admin(&server, &["audit", "-o", "json"]).json();
    assert_eq!(json, api_get(&server, "/admin/audit").await, "the server's page as it gave it");
    let kinds: Vec<&str> = json["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["user_sessions_revoked", "settings_changed"], "newest first: {kinds:?}");

    let table = admin(&server, &["audit", "--limit", "1"]).ok();
    assert_eq!(row(&table, "ID"), ["ID", "AT", "KIND", "ACTOR", "TARGET", "REASON"]);
    let last = table.lines().last().unwrap();
    let next = last.strip_prefix("(older events: --before ").and_then(|s| s.strip_suffix(')')).expect(last);
    let page2 = admin(&server, &["audit", "--limit", "1", "--before", next, "-o", "json"]).json();
    assert_eq!(page2["events"][0]["kind"], "settings_changed");

    let alice = admin(&server, &["audit", "--user", "alice", "-o", "json"]).json();
    assert_eq!(alice, api_get(&server, "/admin/audit?user=alice").await, "filtered by the server");
    let events = alice["events"].as_array().unwrap();
    assert!(events.len() >= 2, "alice's sign-in and the revocation of her sessions: {alice}");
    for e in events {
        assert!(e["actor"] == "alice" || e["target"] == "user:alice", "{e}");
    }
    assert!(events.iter().all(|e| e["actor"] != "bob"), "{alice}");
    let sign_ins = admin(&server, &["audit", "--kind", "sign_in", "-o", "json"]).json();
    let actors: Vec<&str> =
        sign_ins["events"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["bob", "alice"]);
    assert!(sign_ins["next"].is_null());

    let run = admin(&server, &["audit", "--limit", "0"]);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("--limit must be from 1 to 500 (got 0)"), "{}", run.stderr);
}

#[test]
fn every_level_has_help_with_an_example() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--help").env_clear().output().unwrap();
        assert!(out.status.success(), "{args:?} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["admin"]);
    assert!(top.contains("TENURE_CLIENT_SECRET_FILE") && top.contains("Examples:"), "{top}");
    for group in ["settings", "users", "sessions", "clients", "keys", "audit"] {
        assert!(help(&["admin", group]).contains("Example"), "admin {group} --help");
    }
    for command in [
        &["settings", "get"][..],
        &["settings", "set"],
        &["settings", "reset"],
        &["settings", "explain"],
        &["settings", "preview"],
        &["users", "list"],
        &["users", "create"],
        &["users", "show"],
        &["users", "disable"],
        &["users", "enable"],
        &["users", "set-password"],
        &["users", "delete"],
        &["sessions", "list"],
        &["sessions", "revoke"],
        &["clients", "list"],
        &["clients", "create"],
        &["clients", "show"],
        &["clients", "rotate-secret"],
        &["clients", "delete"],
        &["keys", "list"],
        &["keys", "rotate"],
    ] {
        let mut args = vec!["admin"];
        args.extend_from_slice(command);
        assert!(help(&args).contains("Example"), "{args:?} --help");
    }
}

#[test]
fn admin_reads_no_server_configuration() {
    // A broken tenure.toml and TENURE_CONFIG do not matter to a client...
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenure.toml"), "this is not toml").unwrap();
    let out = Command::new(BIN)
        .args(["admin", "settings", "set", "idle_timeout=45x"])
        .current_dir(dir.path())
        .env_clear()
        .env("TENURE_CONFIG", "/nonexistent/tenure.toml")
        .env("TENURE_URL", "http://127.0.0.1:1")
        .env("TENURE_CLIENT_ID", "cli")
        .env("TENURE_CLIENT_SECRET", "s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("idle_timeout: \"45x\" is not a duration"),
        "the argument is checked, not the config: {stderr}"
    );
    // ...and --config is refused rather than silently ignored.
    let out = Command::new(BIN).args(["admin", "--config", "x.toml", "keys", "list"]).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config does not apply"));
}

#[test]
fn a_password_is_never_taken_from_the_command_line() {
    let out = Command::new(BIN)
        .args(["admin", "users", "create", "carol", "--password", "hunter2"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["admin", "users", "create", "carol"]).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--password-file") && stderr.contains("--password-stdin"), "{stderr}");
}

/// The `client_secret` line a create or rotate-secret printed.
fn printed_secret(out: &str) -> String {
    let line =
        out.lines().find_map(|l| l.strip_prefix("client_secret: ")).unwrap_or_else(|| panic!("no secret in:\n{out}"));
    assert_eq!(out.matches(line).count(), 1, "the secret is printed once:\n{out}");
    line.to_owned()
}

async fn cc_status(server: &Server, id: &str, secret: &str) -> u16 {
    server.post_form("/token", Some((id, secret)), &[("grant_type", "client_credentials")]).await.status().as_u16()
}

#[tokio::test]
async fn users_are_created_shown_listed_disabled_and_deleted() {
    let server = Server::start(&config(), &[]);
    let file = server.path().join("carol.pw");
    std::fs::write(&file, "carol-password\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    let out =
        admin(&server, &["users", "create", "carol", "--email", "carol@example.com", "--password-file", &file]).ok();
    assert!(out.starts_with("created user carol\n"), "{out}");
    assert!(!out.contains("carol-password"), "the password is never printed");
    assert_eq!(row(&out, "email"), ["email", "carol@example.com"]);
    // The password works: carol signs in.
    sign_in(&server, "carol").await;

    let shown = admin(&server, &["users", "show", "carol", "-o", "json"]).json();
    assert_eq!(shown, api_get(&server, "/admin/users/carol").await);
    assert_eq!(shown["source"], "admin");
    // users:edit is enough for users (the `automation` service account).
    let automation = [("TENURE_CLIENT_SECRET", "automation-secret")];
    let run =
        admin_as(&server, &automation, &["--client-id", "automation", "users", "show", "carol", "-o", "json"], None);
    assert_eq!(run.json(), shown);

    let run = admin_as(
        &server,
        &[("TENURE_CLIENT_SECRET", CLI_SECRET)],
        &["users", "create", "dave", "--password-stdin"],
        Some("dave-password\n"),
    );
    run.ok();
    sign_in(&server, "dave").await;

    let table = admin(&server, &["users", "list", "--query", "CAR"]).ok();
    assert_eq!(row(&table, "carol")[..3], ["carol", "-", "carol@example.com"]);
    assert!(!table.contains("dave"), "{table}");
    let json = admin(&server, &["users", "list", "-o", "json"]).json();
    assert_eq!(json, api_get(&server, "/admin/users?page=1").await);
    let names: Vec<&str> = json["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave"]);

    // Disabling revokes every session in the same step.
    assert_eq!(admin(&server, &["users", "disable", "dave"]).ok(), "user dave disabled; their sessions are revoked\n");
    assert_eq!(row(&admin(&server, &["users", "show", "dave"]).ok(), "state"), ["state", "disabled"]);
    let listed = admin(&server, &["sessions", "list", "dave"]).ok();
    assert!(listed.starts_with("dave has no live sessions\n"), "{listed}");
    assert!(listed.contains("account disabled by"), "SPEC 14: listed as ended, and why: {listed}");
    assert_eq!(admin(&server, &["users", "enable", "dave"]).ok(), "user dave enabled\n");
    let run = admin_as(
        &server,
        &[("TENURE_CLIENT_SECRET", CLI_SECRET)],
        &["users", "set-password", "dave", "--password-stdin"],
        Some("dave-password\n"),
    );
    assert_eq!(run.ok(), "user dave has a new password; their sessions are revoked\n");

    // A user of the config file cannot be changed here: the server's 409.
    let run = admin(&server, &["users", "disable", "alice"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("HTTP 409"), "{}", run.stderr);

    assert_eq!(admin(&server, &["users", "delete", "carol"]).ok(), "deleted user carol; their sessions are revoked\n");
    let run = admin(&server, &["users", "show", "carol"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("HTTP 404"), "{}", run.stderr);
}

#[tokio::test]
async fn users_are_listed_fifty_a_page() {
    let server = Server::start(&config(), &[]);
    let hash = {
        let mut child = Command::new(BIN)
            .arg("hash-secret")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a-long-password\n").unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_owned()
    };
    let token = api_token(&server).await;
    for i in 0..50 {
        let body = serde_json::json!({"username": format!("user{i:02}"), "password_hash": hash});
        let resp = server.http.post(server.url("/admin/users")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    // alice, bob (config) and user00..user49: 52 users, sorted by username.
    let first = admin(&server, &["users", "list"]).ok();
    assert_eq!(first.lines().count(), 1 + 50 + 1, "a header, 50 users and where the rest are");
    assert_eq!(first.lines().last(), Some("(more: --page 2)"));
    let second = admin(&server, &["users", "list", "--page", "2"]).ok();
    let names: Vec<&str> = second.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["user48", "user49"]);
    let json = admin(&server, &["users", "list", "--page", "2", "-o", "json"]).json();
    assert_eq!(json, api_get(&server, "/admin/users?page=2").await);
    assert!(json["next_page"].is_null());
    let run = admin(&server, &["users", "list", "--page", "0"]);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("--page counts from 1"), "{}", run.stderr);
}

#[tokio::test]
async fn clients_are_created_with_a_secret_shown_once_rotated_and_deleted() {
    let server = Server::start(&config(), &[]);
    let out = admin(
        &server,
        &["clients", "create", "reports", "--grant-type", "client_credentials", "--scope", "orders:read"],
    )
    .ok();
    assert!(out.starts_with("created client reports (confidential)\n"), "{out}");
    let first = printed_secret(&out);
    assert!(out.contains("shown once"), "{out}");
    assert_eq!(cc_status(&server, "reports", &first).await, 200, "the printed secret works");

    let out = admin(&server, &["clients", "rotate-secret", "reports"]).ok();
    let second = printed_secret(&out);
    assert_ne!(first, second);
    assert_eq!(cc_status(&server, "reports", &first).await, 401, "the old secret stops working");
    assert_eq!(cc_status(&server, "reports", &second).await, 200);

    let json = admin(
        &server,
        &[
            "clients",
            "create",
            "kubectl",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:8000/callback",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
            "--max-lifetime",
            "1h",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(json["session"]["max_lifetime"], 3600);
    assert!(json.get("client_secret").is_none(), "a public client has no secret");
    assert_eq!(
        admin(&server, &["clients", "show", "kubectl", "-o", "json"]).json(),
        api_get(&server, "/admin/clients/kubectl").await
    );
    let shown = admin(&server, &["clients", "show", "kubectl"]).ok();
    assert_eq!(row(&shown, "session"), ["session", "max", "1h"]);

    let table = admin(&server, &["clients", "list"]).ok();
    assert_eq!(row(&table, "kubectl")[..2], ["kubectl", "public"]);
    assert_eq!(row(&table, CLI_ID)[..2], [CLI_ID, "confidential"]);
    assert_eq!(admin(&server, &["clients", "list", "-o", "json"]).json(), api_get(&server, "/admin/clients").await);

    let run = admin(&server, &["clients", "create", "bad", "--public", "--max-lifetime", "1x"]);
    assert_eq!(run.status, Some(2));
    assert!(run.stderr.contains("--max-lifetime: \"1x\" is not a duration"), "{}", run.stderr);
    // A loosening override is refused by the server, in its words.
    let run =
        admin(&server, &["clients", "create", "loose", "--grant-type", "client_credentials", "--max-lifetime", "40d"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("HTTP 400") && run.stderr.contains("max_lifetime"), "{}", run.stderr);

    assert_eq!(
        admin(&server, &["clients", "delete", "reports"]).ok(),
        "deleted client reports; its token families are revoked\n"
    );
    assert_eq!(cc_status(&server, "reports", &second).await, 401);
}

#[tokio::test]
async fn keys_are_listed_and_rotated() {
    let server = Server::start(&config(), &[]);
    // The CLI shows what the API answers; ages count from each call's own
    // "now", so they may differ by the second that passed between the two.
    let without_ages = |mut v: serde_json::Value| {
        for k in v["keys"].as_array_mut().into_iter().flatten() {
            k.as_object_mut().map(|o| o.remove("age_seconds"));
        }
        v
    };
    let before = admin(&server, &["keys", "list", "-o", "json"]).json();
    assert!(before["keys"][0]["age_seconds"].is_u64(), "{before}");
    assert_eq!(without_ages(before), without_ages(api_get(&server, "/admin/keys").await));
    let rotated = admin(&server, &["keys", "rotate", "-o", "json"]).json();
    let kids: Vec<&str> = rotated["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(!kids.is_empty(), "{rotated}");
    let after = api_get(&server, "/admin/keys").await;
    let table = admin(&server, &["keys", "list"]).ok();
    assert_eq!(row(&table, "KID"), ["KID", "ALG", "ROLE", "STATE", "CREATED", "AGE", "WHEN"]);
    assert_eq!(table.lines().count(), after["keys"].as_array().unwrap().len() + 1, "{table}");
    for key in after["keys"].as_array().unwrap() {
        let cells = row(&table, key["kid"].as_str().unwrap());
        assert_eq!(
            cells[1..4],
            [key["alg"].as_str().unwrap(), key["role"].as_str().unwrap(), key["state"].as_str().unwrap()]
        );
    }
    for kid in kids {
        assert!(table.contains(kid), "the new key {kid} is listed:\n{table}");
    }
    // Published ahead of use (key_publish_ahead): a next key says when it signs.
    for key in rotated["keys"].as_array().unwrap() {
        let cells = row(&table, key["kid"].as_str().unwrap());
        if key["state"] == "next" {
            assert_eq!(cells[6..8], ["active", "in"], "{table}");
        }
    }
}

#[tokio::test]
async fn explain_and_preview_show_what_decides_and_what_would_change() {
    let server = Server::start(&config(), &[]);
    let json =
        admin(&server, &["settings", "explain", "--client", "web", "--user", "alice", "--remember-me", "-o", "json"])
            .json();
    assert_eq!(
        json,
        api_get(&server, "/admin/settings/session/explain?client_id=web&username=alice&remember_me=true").await
    );
    let table = admin(&server, &["settings", "explain", "--client", "web", "--user", "alice", "--remember-me"]).ok();
    assert!(table.starts_with("client web, user alice, remember me: yes\n"), "{table}");
    assert_eq!(row(&table, "idle_timeout")[..2], ["idle_timeout", "7d"]);

    sign_in(&server, "alice").await;
    sign_in(&server, "bob").await;
    let json = admin(&server, &["settings", "preview", "idle_timeout=10m", "max_lifetime=8h", "-o", "json"]).json();
    let token = api_token(&server).await;
    let resp = server
        .http
        .post(server.url("/admin/settings/session/preview"))
        .bearer_auth(token)
        .json(&serde_json::json!({"idle_timeout": 600, "max_lifetime": 28_800}))
        .send()
        .await
        .unwrap();
    assert_eq!(json, resp.json::<Value>().await.unwrap(), "the server's answer");
    assert_eq!(json["sessions_shortened"], 2, "{json}");
    let table = admin(&server, &["settings", "preview", "idle_timeout=10m", "max_lifetime=8h"]).ok();
    assert_eq!(row(&table, "valid"), ["valid", "yes"]);
    assert_eq!(row(&table, "sessions")[..], ["sessions", "ending", "now", "0"]);
    assert!(table.contains("sessions shortened   2"), "{table}");
    assert_eq!(row(&table, "web"), ["web", "0", "2", "0", "0"], "by client: {table}");
    assert_eq!(
        api_get(&server, "/admin/settings/session").await["sources"]["max_lifetime"],
        "default",
        "nothing changed"
    );
    let run = admin(&server, &["settings", "preview", "idle_timeout=2d"]);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("must not exceed session.max_lifetime"), "{}", run.stderr);
}

/// `tenure admin` with `env` only (no server): the exit status and stderr.
fn admin_env(env: &[(&str, &str)], args: &[&str]) -> std::process::Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("admin")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_CLIENT_ID", CLI_ID)
        .env("TENURE_CLIENT_SECRET", CLI_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("run tenure admin")
}

/// An `http://` URL to a host that is not loopback would carry the client
/// secret in clear: refused before anything is sent (exit 2, naming
/// TENURE_URL and the flag), unless `--insecure-http` or
/// `TENURE_ALLOW_INSECURE_HTTP=1` says so.
#[test]
fn plain_http_to_a_remote_host_is_refused_unless_the_flag_allows_it() {
    // TEST-NET-1 (RFC 5737): never a real host.
    let remote = "http://192.0.2.1:9";
    let refused = Run::from(admin_env(&[("TENURE_URL", remote)], &["users", "list"]).wait_with_output().unwrap());
    assert_eq!(refused.status, Some(2), "{}", refused.stderr);
    for words in
        ["TENURE_URL", "\"http://192.0.2.1:9\"", "nothing was sent", "--insecure-http", "TENURE_ALLOW_INSECURE_HTTP=1"]
    {
        assert!(refused.stderr.contains(words), "{words} in {}", refused.stderr);
    }
    let bad = Run::from(
        admin_env(&[("TENURE_URL", remote), ("TENURE_ALLOW_INSECURE_HTTP", "yes")], &["users", "list"])
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(bad.status, Some(2));
    assert!(bad.stderr.contains("TENURE_ALLOW_INSECURE_HTTP must be 1 or 0"), "{}", bad.stderr);

    // Allowed: the request is attempted (and fails to connect, within the
    // CLI's 5 s connect timeout), with a warning.
    let by_flag = admin_env(&[("TENURE_URL", remote)], &["--insecure-http", "users", "list"]);
    let by_env = admin_env(&[("TENURE_URL", remote), ("TENURE_ALLOW_INSECURE_HTTP", "1")], &["users", "list"]);
    for child in [by_flag, by_env] {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.status, Some(1), "a transport failure, not a refusal: {}", run.stderr);
        assert!(run.stderr.contains("warning: http://192.0.2.1:9 is http"), "{}", run.stderr);
        assert!(run.stderr.contains("reading discovery at http://192.0.2.1:9/"), "{}", run.stderr);
        assert!(!run.stderr.contains("nothing was sent"), "{}", run.stderr);
    }
}
