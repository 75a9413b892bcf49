//! The first run (SPEC 9 "First run"), against the real binary: with no
//! administrator, `serve` prints a one-time setup URL whose page creates the
//! first administrator and signs them in to the console; afterwards the URL
//! says setup is done. `TENURE_BOOTSTRAP_ADMIN_*` create the administrator
//! without the page.

use std::time::Duration;

use serde_json::Value;

use crate::support::flow::{Browser, input_value, location};
use crate::support::kit::{sign_in, web_client};
use crate::support::{Server, config_with, eventually};

/// No user at all; a web client that may ask for the `admin` scope, to
/// call the admin API as the new administrator.
pub fn config() -> String {
    config_with(&web_client(&["openid", "profile", "admin"]))
}

/// The setup URLs the server printed on standard output.
fn printed_setup_urls(server: &Server) -> Vec<String> {
    server
        .printed()
        .iter()
        .filter(|l| l.starts_with("tenure setup:"))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

/// The one setup URL, as a path of the server (printed right after the
/// listening line: waited for, up to 10 s).
pub async fn setup_path(server: &Server) -> String {
    let printed = || async { !printed_setup_urls(server).is_empty() };
    assert!(eventually(Duration::from_secs(10), printed).await, "no setup URL: {:?}", server.printed());
    let urls = printed_setup_urls(server);
    assert_eq!(urls.len(), 1, "one setup URL, printed once: {:?}", server.printed());
    let path = urls[0].strip_prefix(&server.base).expect("on the issuer's origin").to_owned();
    assert!(path.starts_with("/console/setup?token="), "{path}");
    let token = path.rsplit('=').next().unwrap();
    assert_eq!(token.len(), 43, "256 random bits, base64url: {token}");
    path
}

/// Post the setup form of `page` (its HTML) with these fields.
async fn submit(
    server: &Server,
    browser: &Browser,
    page: &str,
    username: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    let token = input_value(page, "token").expect("the form carries the token");
    let csrf = input_value(page, "csrf_token").expect("the form carries a CSRF token");
    let form = [
        ("token", token.as_str()),
        ("csrf_token", csrf.as_str()),
        ("username", username),
        ("password", password),
        ("confirm_password", confirm),
    ];
    browser.post_form(server, "/console/setup", &form).await
}

/// Follow redirects from `location` as a browser does (at most 10); the
/// last response and its URL.
async fn follow(server: &Server, browser: &Browser, mut location: String) -> (reqwest::Response, String) {
    for _ in 0..10 {
        let url = if location.starts_with('/') { server.url(&location) } else { location.clone() };
        let resp = browser.http.get(&url).send().await.unwrap();
        match crate::support::flow::location(&resp) {
            Some(next) if resp.status().is_redirection() => location = next,
            _ => return (resp, url),
        }
    }
    panic!("more than 10 redirects from {location}");
}

/// An access token of `username` at the client `web` with the `admin` scope.
async fn admin_token(server: &Server, username: &str, password: &str) -> String {
    sign_in(server, username, password, "openid admin").await.access()
}

/// The users of `GET /admin/users` as the administrator `username`.
async fn users_seen_by(server: &Server, username: &str, password: &str) -> Vec<Value> {
    let token = admin_token(server, username, password).await;
    let resp = server.http.get(server.url("/admin/users")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{username} may call the admin API");
    resp.json::<Value>().await.unwrap()["users"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_printed_setup_url_creates_the_first_administrator_who_lands_in_the_console_signed_in() {
    let server = Server::start(&config(), &[]);
    let path = setup_path(&server).await;
    let browser = Browser::new();

    let page = browser.get(&server, &path).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.unwrap();
    for label in [">Username</label>", ">Password</label>", ">Confirm password</label>"] {
        assert!(page.contains(label), "the form has {label}: {page}");
    }

    // Refused inline, nothing created: the page still offers the form.
    let mismatch = submit(&server, &browser, &page, "admin", "correct horse", "correct hose").await;
    assert_eq!(mismatch.status(), 400);
    let mismatch = mismatch.text().await.unwrap();
    assert!(mismatch.contains("the two passwords differ"), "{mismatch}");
    assert!(mismatch.contains("value=\"admin\""), "the username is kept");
    let short = submit(&server, &browser, &mismatch, "admin", "short", "short").await;
    assert_eq!(short.status(), 400);
    let short = short.text().await.unwrap();
    assert!(short.contains("password: must be at least 8 characters"), "{short}");
    let bad_name = submit(&server, &browser, &short, "ad min", "correct horse", "correct horse").await;
    assert_eq!(bad_name.status(), 400, "the username rules of every user");
    let without_csrf = browser
        .post_form(
            &server,
            "/console/setup",
            &[
                ("token", &input_value(&page, "token").unwrap()),
                ("username", "admin"),
                ("password", "correct horse"),
                ("confirm_password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(without_csrf.status(), 403, "CSRF-protected");
    assert_eq!(browser.get(&server, &path).await.status(), 200, "no administrator yet: the form again");

    // Created, signed in, and through the console's own code + PKCE flow
    // on its first page.
    let created = submit(&server, &browser, &page, "admin", "correct horse", "correct horse").await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    assert_eq!(location(&created).as_deref(), Some("/console"));
    let (landed, url) = follow(&server, &browser, "/console".into()).await;
    assert_eq!(landed.status(), 200);
    assert_eq!(url, server.url("/console/settings"), "an administrator's start page");
    let landed = landed.text().await.unwrap();
    assert!(landed.contains("Signed in as <strong>admin</strong>"), "{landed}");

    let users = users_seen_by(&server, "admin", "correct horse").await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["username"], "admin");
    assert_eq!(users[0]["permissions"], serde_json::json!(["system:administer"]));
    assert_eq!(users[0]["source"], "admin");

    // Afterwards the URL says setup is done, and the form creates nothing.
    let again = browser.get(&server, &path).await;
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("Setup is done"));
    let replay = submit(&server, &browser, &page, "second", "correct horse", "correct horse").await;
    assert!(replay.text().await.unwrap().contains("Setup is done"));
    assert_eq!(users_seen_by(&server, "admin", "correct horse").await.len(), 1, "no second user");

    // A restart with an administrator prints no setup URL.
    let dir = server.kill_keep_dir();
    let restarted = Server::start_in(dir, &config(), &[]);
    let done = Browser::new().get(&restarted, &path).await;
    assert!(done.text().await.unwrap().contains("Setup is done"));
    // Printed, if at all, right after the listening line: by now.
    assert!(printed_setup_urls(&restarted).is_empty(), "{:?}", restarted.printed());
}

#[tokio::test]
async fn a_wrong_token_creates_nothing_and_racing_posts_create_one_administrator() {
    let server = Server::start(&config(), &[]);
    let path = setup_path(&server).await;

    let wrong = Browser::new().get(&server, "/console/setup?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("This setup link does not work"));
    assert_eq!(Browser::new().get(&server, "/console/setup").await.status(), 403, "no token");

    // A form posted with a wrong token (a valid CSRF token) is refused too.
    let browser = Browser::new();
    let page = browser.get(&server, &path).await.text().await.unwrap();
    let forged = page.replace(&input_value(&page, "token").unwrap(), "wrong-token");
    let refused = submit(&server, &browser, &forged, "mallory", "correct horse", "correct horse").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("no user was created"));

    // Two browsers post at once: one administrator.
    let (first, second) = (Browser::new(), Browser::new());
    let page_1 = first.get(&server, &path).await.text().await.unwrap();
    let page_2 = second.get(&server, &path).await.text().await.unwrap();
    let (a, b) = tokio::join!(
        submit(&server, &first, &page_1, "ann", "correct horse", "correct horse"),
        submit(&server, &second, &page_2, "bob", "correct horse", "correct horse"),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    let winner = if statuses[0] == 303 { "ann" } else { "bob" };
    assert!(statuses.contains(&303) && statuses.contains(&200), "one created, one told it is done: {statuses:?}");
    let users = users_seen_by(&server, winner, "correct horse").await;
    let names: Vec<&str> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, [winner], "exactly one user, the winner");
}

#[tokio::test]
async fn a_configured_administrator_means_no_setup_url() {
    let config = format!(
        "{}\n[[users]]\nusername = \"root\"\npassword = \"root-password\"\npermissions = [\"system:administer\"]\n",
        config()
    );
    let server = Server::start(&config, &[]);
    let page = Browser::new().get(&server, "/console/setup?token=anything").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Setup is done"));
    assert!(printed_setup_urls(&server).is_empty(), "{:?}", server.printed());
}

#[tokio::test]
async fn the_bootstrap_variables_create_the_administrator_without_the_page() {
    let env = [("TENURE_BOOTSTRAP_ADMIN_USERNAME", "ops"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "bootstrap-pass")];
    let server = Server::start(&config(), &env);
    let browser = Browser::new();
    let landed = crate::console::sign_in(&server, &browser, "/console/users", "ops", "bootstrap-pass").await;
    assert_eq!(landed, "/console/users", "signed in to the console");
    let users = users_seen_by(&server, "ops", "bootstrap-pass").await;
    assert_eq!(users[0]["permissions"], serde_json::json!(["system:administer"]));
    assert!(printed_setup_urls(&server).is_empty(), "an administrator exists: {:?}", server.printed());

    // Once an administrator exists the variables are ignored (a changed
    // password does not overwrite anything, nor stop the start).
    let dir = server.kill_keep_dir();
    let env = [("TENURE_BOOTSTRAP_ADMIN_USERNAME", "ops"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "another-pass")];
    let restarted = Server::start_in(dir, &config(), &env);
    assert_eq!(users_seen_by(&restarted, "ops", "bootstrap-pass").await.len(), 1, "the first password still works");
    drop(restarted);

    // ..._PASSWORD_FILE: its first line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    std::fs::write(&file, "from-a-file-pass\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    let env = [("TENURE_BOOTSTRAP_ADMIN_USERNAME", "ops"), ("TENURE_BOOTSTRAP_ADMIN_PASSWORD_FILE", file.as_str())];
    let server = Server::start_in(dir, &config(), &env);
    assert_eq!(users_seen_by(&server, "ops", "from-a-file-pass").await.len(), 1);
    assert!(printed_setup_urls(&server).is_empty());
}

#[test]
fn a_bootstrap_password_that_breaks_the_user_rules_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::tenure()
        .current_dir(dir.path())
        .env("TENURE_LISTEN", "127.0.0.1:0")
        .env("TENURE_BOOTSTRAP_ADMIN_USERNAME", "ops")
        .env("TENURE_BOOTSTRAP_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TENURE_BOOTSTRAP_ADMIN_PASSWORD: the password must be at least 8 characters"), "{stderr}");
}

/// With PostgreSQL the token's hash is in the store: the URL one replica
/// printed works at another, and two replicas posting at once (each with its
/// own URL, at the other replica) create one administrator.
#[tokio::test]
async fn with_postgresql_a_replicas_setup_url_works_at_another_and_racing_replicas_create_one_administrator() {
    let Some(db) = crate::support::postgres::database().await else { return };
    crate::support::postgres::migrate(&db.url);
    let env = [("TENURE_STORE", "postgres"), ("TENURE_DATABASE_URL", db.url.as_str())];
    let a = Server::start(&config(), &env);
    let keys = a.keys_dir().display().to_string();
    let b = Server::start(&config(), &[env[0], env[1], ("TENURE_KEYS_DIR", keys.as_str())]);
    let (path_a, path_b) = (setup_path(&a).await, setup_path(&b).await);
    assert_ne!(path_a, path_b, "each start draws its own token");

    let (first, second) = (Browser::new(), Browser::new());
    let page_1 = first.get(&b, &path_a).await;
    assert_eq!(page_1.status(), 200, "A's URL opens the form at B");
    let page_1 = page_1.text().await.unwrap();
    let page_2 = second.get(&a, &path_b).await;
    assert_eq!(page_2.status(), 200, "B's URL opens the form at A");
    let page_2 = page_2.text().await.unwrap();
    let (one, two) = tokio::join!(
        submit(&b, &first, &page_1, "ann", "correct horse", "correct horse"),
        submit(&a, &second, &page_2, "bob", "correct horse", "correct horse"),
    );
    let statuses = [one.status().as_u16(), two.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "one administrator created: {statuses:?}");
    assert!(statuses.iter().all(|s| [303, 200, 403].contains(s)), "the other is refused: {statuses:?}");
    let winner = if statuses[0] == 303 { "ann" } else { "bob" };
    let users = users_seen_by(&a, winner, "correct horse").await;
    let names: Vec<&str> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, [winner], "exactly one user, at every replica");
    for (server, path) in [(&a, &path_a), (&a, &path_b), (&b, &path_a), (&b, &path_b)] {
        let page = Browser::new().get(server, path).await;
        assert!(page.text().await.unwrap().contains("Setup is done"), "{path} at {}", server.base);
    }
}

/// A script that reads the listening line and closes the pipe does not
/// stop a first run: the setup line after it is not worth dying for.
#[tokio::test]
async fn a_closed_standard_output_after_the_listening_line_does_not_stop_the_first_run() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenure.toml"), config()).unwrap();
    let mut child = crate::support::tenure()
        .current_dir(dir.path())
        // Log lines on standard error before the setup line widen the
        // window in which the pipe is already closed.
        .env("TENURE_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = {
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        lines.next().unwrap().unwrap()
        // The pipe closes here, before the setup line is (or was) written.
    };
    let base = first.strip_prefix("tenure listening on ").unwrap().split_whitespace().next().unwrap().to_owned();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let ready = http.get(format!("{base}/readyz")).send().await.expect("still serving");
        assert_eq!(ready.status(), 200);
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
