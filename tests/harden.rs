//! Hardening (issue 13): connection timeouts and the connection cap, metrics
//! cardinality, bounded families per session and client, logout that never
//! trusts a bare ID token, exact redirect URIs for web clients, the admin
//! settings floor, strict JSON and form media types, HSTS and `__Host-`
//! cookies on an https issuer; (issue 17) per-address connection limits,
//! the first-byte timeout, connection turnover, a private store directory.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::flow::{Browser, code_from, input_value, location, pkce_pair};
use crate::support::kit::{self, OPS, WEB, WEB_REDIRECT, call, cc_token, user, web_client};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

fn config() -> String {
    config_with(&format!(
        r#"{}
[[clients]]
id = "cli"
public = true
application_type = "native"
redirect_uris = ["http://127.0.0.1:9000/callback"]
grant_types = ["authorization_code", "refresh_token"]
{OPS}{}"#,
        web_client(&["openid", "profile", "email"]),
        user("alice", &[])
    ))
}

fn web_query() -> Vec<(&'static str, &'static str)> {
    vec![("response_type", "code"), ("client_id", "web"), ("redirect_uri", WEB_REDIRECT), ("scope", "openid")]
}

async fn redeem(server: &Server, code: &str) -> serde_json::Value {
    kit::redeem(server, WEB, code, WEB_REDIRECT, None).await.body
}

async fn refresh(server: &Server, refresh_token: &str) -> reqwest::Response {
    kit::refresh(server, WEB, refresh_token).await
}

async fn admin_token(server: &Server) -> String {
    cc_token(server, "ops", "ops-secret").await
}

fn s(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_owned()
}

// ---- connection limits and timeouts -------------------------------------

/// Short connection timeouts (whole seconds) so the tests take seconds.
const SHORT: [(&str, &str); 3] = [
    ("TENURE_SERVER_REQUEST_HEADER_TIMEOUT", "2"),
    ("TENURE_SERVER_REQUEST_BODY_TIMEOUT", "2"),
    ("TENURE_SERVER_KEEP_ALIVE_TIMEOUT", "2"),
];

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap()
}

/// Read until the server closes the connection; what it sent, and when it
/// closed. Panics if it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "still open after {within:?}; received {:?}", String::from_utf8_lossy(&received));
    (String::from_utf8_lossy(&received).into_owned(), Instant::now())
}

/// Write `chunk` every `every` until the server closes the connection or
/// `within` passes; when it closed.
async fn drip_until_closed(stream: &mut TcpStream, chunk: &[u8], every: Duration, within: Duration) -> Instant {
    let started = Instant::now();
    while started.elapsed() < within {
        // sleep: the drip rate is what is under test (a slow client)
        tokio::time::sleep(every).await;
        if stream.write_all(chunk).await.is_err() {
            return Instant::now();
        }
        // A closed connection shows as EOF on read before a write fails.
        let mut probe = [0u8; 1024];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
            return Instant::now();
        }
    }
    panic!("still open after {within:?} of dripping");
}

#[tokio::test]
async fn a_connection_dripping_its_headers_is_closed_at_the_header_timeout() {
    let server = Server::start(&config(), &SHORT);
    let mut stream = connect(&server).await;
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tenure\r\n").await.unwrap();
    // A header every 500 ms: bytes keep coming, the head never ends.
    let closed =
        drip_until_closed(&mut stream, b"X-Drip: 1\r\n", Duration::from_millis(500), Duration::from_secs(10)).await;
    let open_for = closed - started;
    assert!(open_for >= Duration::from_millis(1500), "closed too early: {open_for:?}");
    assert!(open_for < Duration::from_secs(5), "the 2 s header timeout: {open_for:?}");
}

#[tokio::test]
async fn a_dripping_body_gets_408_at_the_body_timeout() {
    let server = Server::start(&config(), &SHORT);
    let mut stream = connect(&server).await;
    let head = "POST /token HTTP/1.1\r\nHost: tenure\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 60000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let dripping = tokio::spawn(async move {
        for _ in 0..40 {
            // sleep: the drip rate is what is under test (a slow body)
            tokio::time::sleep(Duration::from_millis(250)).await;
            if write.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the connection is closed");
    dripping.abort();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    let open_for = closed - started;
    assert!(open_for >= Duration::from_millis(1500) && open_for < Duration::from_secs(5), "{open_for:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout() {
    let server = Server::start(&config(), &SHORT);
    // Kept alive after a response ...
    let mut stream = connect(&server).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tenure\r\n\r\n").await.unwrap();
    let mut first = [0u8; 15];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    let answered = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let idle_for = closed - answered;
    assert!(idle_for >= Duration::from_millis(1500) && idle_for < Duration::from_secs(5), "{idle_for:?}");
    // ... and a connection that never sends a byte.
    let mut silent = connect(&server).await;
    let opened = Instant::now();
    let (received, closed) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(!received.contains("200"), "{received}");
    let idle_for = closed - opened;
    assert!(idle_for >= Duration::from_millis(1500) && idle_for < Duration::from_secs(5), "{idle_for:?}");
    // The server itself serves on.
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = Server::start(&config(), &[("TENURE_SERVER_MAX_CONNECTIONS", "2")]);
    let first = connect(&server).await;
    let _second = connect(&server).await;
    // Give the accept loop a moment to take both.
    // sleep: the accept loop taking both connections cannot be observed from outside under a cap of 2
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = connect(&server).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: tenure\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap of 2: {early:?}");
    // A slot frees up: the waiting connection is served.
    drop(first);
    let (received, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_does_not_wait_for_idle_connections() {
    // Default timeouts (a 1 minute keep-alive): shutdown must not wait for them.
    let server = Server::start(&config(), &[]);
    let _idle = connect(&server).await;
    let mut in_flight = connect(&server).await;
    let body = b"grant_type=client_credentials";
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: tenure\r\nAuthorization: Basic b3BzOm9wcy1zZWNyZXQ=\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..5]).await.unwrap();
    // sleep: the server reading the partial request cannot be observed from outside
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // sleep: the server acting on SIGTERM cannot be observed without a new connection
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The request begun before the signal is answered in full.
    in_flight.write_all(&body[5..]).await.unwrap();
    let (received, _) = read_until_closed(&mut in_flight, Duration::from_secs(10)).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(received.contains("access_token"), "{received}");
    // And the process exits without waiting for the idle connection.
    let stopped = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(stopped.elapsed() < Duration::from_secs(5));
}

// ---- metrics ----/// A connection to the server from `source`, another loopback address
/// (Linux routes all of 127.0.0.0/8 to `lo`): a client at another address.
async fn connect_from(server: &Server, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server.base.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// Send one GET /healthz and read its response head; the status line, or
/// what went wrong. Panics if no answer comes within `within`.
async fn health_over(stream: &mut TcpStream, within: Duration) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: tenure\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let answered = tokio::time::timeout(within, async {
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "no answer within {within:?}");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn one_address_cannot_take_every_connection_slot() {
    let limits = [("TENURE_SERVER_MAX_CONNECTIONS", "16"), ("TENURE_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "8")];
    let server = Server::start(&config(), &limits);
    // 127.0.0.2 opens 12 connections that never send a byte: 8 are held,
    // the 4 beyond its limit are closed at once (long before any timeout).
    let mut greedy = Vec::new();
    for _ in 0..8 {
        greedy.push(connect_from(&server, "127.0.0.2").await);
    }
    for _ in 0..4 {
        let mut extra = connect_from(&server, "127.0.0.2").await;
        let (received, _) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
        assert_eq!(received, "", "closed without an answer");
    }
    // Another client is served at once.
    let mut other = connect_from(&server, "127.0.0.3").await;
    let status = health_over(&mut other, Duration::from_secs(2)).await;
    assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
    drop(other);

    // 127.0.0.4 takes the other 8 slots: every slot is held by silent
    // connections. A third address still gets one, at once: the address
    // holding the most gives up its longest-held connection.
    for _ in 0..8 {
        greedy.push(connect_from(&server, "127.0.0.4").await);
    }
    let mut beyond = connect_from(&server, "127.0.0.4").await;
    read_until_closed(&mut beyond, Duration::from_secs(2)).await;
    let asked = Instant::now();
    let mut newcomer = connect_from(&server, "127.0.0.5").await;
    let status = health_over(&mut newcomer, Duration::from_secs(2)).await;
    assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_first_byte_timeout() {
    // A long keep-alive, a short first-byte timeout.
    let server = Server::start(
        &config(),
        &[("TENURE_SERVER_FIRST_BYTE_TIMEOUT", "1"), ("TENURE_SERVER_KEEP_ALIVE_TIMEOUT", "30")],
    );
    let mut silent = connect(&server).await;
    let opened = Instant::now();
    let (received, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(received, "");
    let open_for = closed - opened;
    assert!(open_for >= Duration::from_millis(700) && open_for < Duration::from_secs(3), "{open_for:?}");
    // A connection that was answered is kept alive for the longer timeout.
    let mut kept = connect(&server).await;
    let status = health_over(&mut kept, Duration::from_secs(5)).await;
    assert!(status.starts_with("HTTP/1.1 200 OK"), "{status}");
    let mut probe = [0u8; 64];
    let still_open = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut probe)).await;
    assert!(still_open.is_err(), "closed while kept alive: {still_open:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_serves_at_most_max_requests_per_connection() {
    let server = Server::start(&config(), &[("TENURE_SERVER_MAX_REQUESTS_PER_CONNECTION", "3")]);
    let mut stream = connect(&server).await;
    for n in 1..=2 {
        let head = health_over(&mut stream, Duration::from_secs(5)).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "request {n}: {head}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "request {n}: {head}");
    }
    let head = health_over(&mut stream, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "the third says so: {head}");
    read_until_closed(&mut stream, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn busy_keep_alive_clients_beyond_the_cap_each_get_a_turn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // 64 clients each sending requests back to back on one kept-alive
    // connection, against 16 slots: the longest-held connections are turned
    // over, so every client is answered within a few seconds. Each keeps
    // the load up until all have had an answer (or 10 s have passed).
    const CLIENTS: usize = 64;
    let server = Server::start(&config(), &[("TENURE_SERVER_MAX_CONNECTIONS", "16")]);
    let url = server.url("/healthz");
    // Built beforehand: each loads the system's CA certificates.
    let https: Vec<reqwest::Client> =
        (0..CLIENTS).map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap()).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for http in https {
        let url = url.clone();
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let mut first_answer = None;
            while answered.load(Ordering::SeqCst) < CLIENTS && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(Ok(resp)) = tokio::time::timeout(left, http.get(&url).send()).await else { continue };
                if resp.status() == 200 && resp.bytes().await.is_ok() && first_answer.is_none() {
                    first_answer = Some(started.elapsed());
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
            first_answer
        }));
    }
    let mut waits = Vec::new();
    for client in clients {
        waits.push(client.await.unwrap());
    }
    let unanswered = waits.iter().filter(|w| w.is_none()).count();
    assert_eq!(unanswered, 0, "{unanswered} of {CLIENTS} clients got no answer within 10 s: {waits:?}");
}

// ---- file modes ----------------------------------------------------------

/// Every directory under `dir` (and `dir`) with its mode, and every file.
fn modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(dir.to_owned(), std::fs::metadata(dir).unwrap().permissions().mode() & 0o777)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(modes(&entry.path()));
        } else if kind.is_file() {
            out.push((entry.path(), entry.metadata().unwrap().permissions().mode() & 0o777));
        }
    }
    out
}

fn assert_private(dir: &std::path::Path) {
    let found = modes(dir);
    assert!(found.len() > 1, "the store wrote files: {found:?}");
    for (path, mode) in found {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

#[tokio::test]
async fn the_store_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    // A fresh data_dir is created 0700, its files 0600.
    let server = Server::start(&config(), &[]);
    assert_eq!(server.http.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    assert_private(&server.path().join("data"));
    drop(server);

    // One created by someone else, open to all, is tightened at start.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("notes.txt"), "left by the operator").unwrap();
    std::fs::set_permissions(data.join("notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start_in(dir, &config(), &[]);
    assert_eq!(server.http.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    assert_private(&server.path().join("data"));
}

// ---- metrics -------------------------------------------------------------

#[tokio::test]
async fn invented_http_methods_share_one_metrics_label() {
    let server = Server::start(&config(), &[]);
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let resp = server.http.request(method, server.url("/token")).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("M0X") && !metrics.contains("M49X"), "one label per invented method:\n{metrics}");
    let other: Vec<&str> = metrics.lines().filter(|l| l.contains("method=\"other\"")).collect();
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(other[0].ends_with(" 50"), "{}", other[0]);
}

// ---- logout --------------------------------------------------------------

#[tokio::test]
async fn a_bare_cross_site_logout_with_a_leaked_expired_id_token_ends_nothing() {
    // A 1 s access token TTL expires the ID token at once (env: the admin API
    // refuses such values). In process on a manual clock.
    let env = [("TENURE_SESSION_ACCESS_TOKEN_TTL", "1"), ("TENURE_SESSION_IDLE_TIMEOUT", "1h")];
    let server = ManualServer::start(&config(), &env).await;
    let browser = Browser::new();
    let code = browser.sign_in_for_code(&server, &web_query(), "alice", "alice-password", false).await;
    let tokens = redeem(&server, &code).await;
    let id_token = s(&tokens, "id_token");
    // Past the ID token's expiry.
    server.advance(2);

    // The attacker's page posts the leaked hint; the victim's browser sends
    // no session cookie on a cross-site POST.
    let attacker = Browser::new();
    let resp = attacker.post_form(&server, "/logout", &[("id_token_hint", &id_token)]).await;
    assert_eq!(resp.status(), 200, "a confirmation page, not a silent logout");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Do you want to sign out?"), "{page}");
    // Even confirming it (the attacker can fetch the page himself) ends only
    // the confirming browser's session, which it does not have.
    let form = [
        ("csrf_token", input_value(&page, "csrf_token").unwrap()),
        ("id_token_hint", input_value(&page, "id_token_hint").unwrap()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let confirmed = attacker.post_form(&server, "/logout", &form).await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(refresh(&server, &s(&tokens, "refresh_token")).await.status(), 200, "the session lives on");
    let code = browser.code_for(&server, &web_query()).await;
    assert!(!code.is_empty(), "still signed in");

    // The user's own browser (it carries the session cookie the hint names)
    // does end it.
    let resp = browser.post_form(&server, "/logout", &[("id_token_hint", &id_token)]).await;
    assert!(resp.text().await.unwrap().contains("You are signed out"));
    assert_eq!(browser.authorize(&server, &web_query()).await.status(), 200, "the sign-in page again");
}

// ---- redirect URIs -------------------------------------------------------

#[tokio::test]
async fn only_native_clients_get_the_loopback_port_wildcard() {
    let server = Server::start(&config(), &[]);
    // A confidential web client registered with port 9000: exact match only.
    let mut query = web_query();
    query[2] = ("redirect_uri", "http://127.0.0.1:9999/callback");
    let resp = Browser::new().authorize(&server, &query).await;
    assert_eq!(resp.status(), 400, "an error page, never a redirect to the unregistered port");
    assert!(location(&resp).is_none());
    assert!(resp.text().await.unwrap().contains("is not registered for client"));

    // A native app may use any port on loopback (RFC 8252 7.3).
    let (_, challenge) = pkce_pair();
    let native = [
        ("response_type", "code"),
        ("client_id", "cli"),
        ("redirect_uri", "http://127.0.0.1:9999/callback"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let browser = Browser::new();
    let code = browser.sign_in_for_code(&server, &native, "alice", "alice-password", false).await;
    assert_eq!(code.len(), 43);
    let resp = browser.authorize(&server, &native).await;
    assert!(location(&resp).unwrap().starts_with("http://127.0.0.1:9999/callback?code="));
    assert_eq!(code_from(resp).await.len(), 43);
}

#[test]
fn application_type_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenure.toml"),
        "[[clients]]\nid = \"c\"\npublic = true\napplication_type = \"desktop\"\nredirect_uris = [\"http://127.0.0.1/\"]\ngrant_types = [\"authorization_code\"]\n",
    )
    .unwrap();
    let out = crate::support::tenure().current_dir(dir.path()).env_clear().arg("check-config").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("clients[c].application_type: \"desktop\" is not an application type; use web or native"),
        "{text}"
    );
}

#[test]
fn check_config_shows_the_connection_limits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenure.toml"), "[server]\nkeep_alive_timeout = \"2m\"\n").unwrap();
    let out = crate::support::tenure()
        .current_dir(dir.path())
        .env_clear()
        .env("TENURE_SERVER_MAX_CONNECTIONS", "64")
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "server.request_header_timeout = 10s",
        "server.request_body_timeout = 30s",
        "server.keep_alive_timeout = 120s",
        "server.max_connections = 64",
        "server.first_byte_timeout = 5s",
        "server.max_connections_per_address = 256",
        "server.max_requests_per_connection = 1000",
    ] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
}

// ---- admin settings ------------------------------------------------------

#[tokio::test]
async fn the_admin_api_cannot_set_lockout_lifetimes_but_the_environment_can() {
    let server = Server::start(&config(), &[]);
    let admin = admin_token(&server).await;
    let put = |body: &'static str| {
        server
            .http
            .put(server.url("/admin/settings/session"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, message) in [
        (
            r#"{"idle_timeout": 2}"#,
            "idle_timeout must be at least session.admin_floor (5m, 300 seconds) when set through the admin API, \
             console or CLI, not 2 seconds; shorter values are for the config file or environment (field idle_timeout)",
        ),
        (r#"{"max_lifetime": 2}"#, "max_lifetime must be at least session.admin_floor (5m, 300 seconds)"),
        (r#"{"remember_me_idle_timeout": 60}"#, "remember_me_idle_timeout must be at least session.admin_floor (5m"),
        (r#"{"remember_me_max_lifetime": 299}"#, "remember_me_max_lifetime must be at least session.admin_floor (5m"),
        (r#"{"access_token_ttl": 299}"#, "access_token_ttl must be at least session.admin_floor (5m, 300 seconds)"),
    ] {
        let resp = put(body).await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "invalid_setting");
        assert!(s(&v, "message").starts_with(message), "{body}: {v}");
    }
    let ok = put(r#"{"idle_timeout": 300, "access_token_ttl": 300}"#).await.unwrap();
    assert_eq!(ok.status(), 200);
    // Nothing of the refused values was applied.
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!((v["idle_timeout"].as_u64(), v["max_lifetime"].as_u64()), (Some(300), Some(43200)));
    // The floor is shown like the ceiling, and is the operator's alone.
    assert_eq!((v["admin_floor"].as_u64(), v["sources"]["admin_floor"].as_str()), (Some(300), Some("default")));
    let resp = put(r#"{"admin_floor": 1}"#).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "invalid_setting");
    assert!(s(&v, "message").starts_with("session.admin_floor may not be set through the admin API"), "{v}");

    // The environment still may (tests, demos).
    let tiny = Server::start(&config(), &[("TENURE_SESSION_IDLE_TIMEOUT", "2"), ("TENURE_SESSION_MAX_LIFETIME", "2")]);
    let admin = admin_token(&tiny).await;
    let v = tiny.http.get(tiny.url("/admin/settings/session")).bearer_auth(&admin).send().await.unwrap();
    let v: serde_json::Value = v.json().await.unwrap();
    assert_eq!(v["idle_timeout"], 2);
}

/// SPEC 3: `session.admin_floor` is the operator's: lowered in the
/// environment, the admin API may go down to it (and no further); it must
/// be above zero and within the ceiling, or the server does not start.
#[tokio::test]
async fn the_operator_sets_the_admin_floor_in_the_file_or_environment() {
    let server = Server::start(&config(), &[("TENURE_SESSION_ADMIN_FLOOR", "1m")]);
    let admin = admin_token(&server).await;
    let put = |body: &'static str| {
        server
            .http
            .put(server.url("/admin/settings/session"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ok = put(r#"{"idle_timeout": 60, "access_token_ttl": 60}"#).await.unwrap();
    assert_eq!(ok.status(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!((v["idle_timeout"].as_u64(), v["access_token_ttl"].as_u64()), (Some(60), Some(60)));
    assert_eq!((v["admin_floor"].as_u64(), v["sources"]["admin_floor"].as_str()), (Some(60), Some("env")));
    let resp = put(r#"{"max_lifetime": 59}"#).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(s(&v, "message").starts_with("max_lifetime must be at least session.admin_floor (1m, 60 seconds)"), "{v}");

    for (var, value, message) in [
        ("TENURE_SESSION_ADMIN_FLOOR", "0", "session.admin_floor must be greater than 0"),
        (
            "TENURE_SESSION_ADMIN_FLOOR",
            "31d",
            "session.admin_floor (31d) must not exceed session.max_lifetime_ceiling (30d)",
        ),
    ] {
        let out =
            crate::support::tenure().arg("check-config").env(var, value).current_dir(server.path()).output().unwrap();
        assert!(!out.status.success(), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{var}={value}: {stderr}");
    }
    let out = crate::support::tenure().arg("check-config").current_dir(server.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("session.admin_floor = 5m"), "shown by check-config");
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_by_name() {
    let server = Server::start(&config(), &[]);
    let admin = admin_token(&server).await;
    let resp = server
        .http
        .put(server.url("/admin/settings/session"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"idle_timeout": 600, "idle_timeout": 900}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(v["message"], r#"the JSON body has the key "idle_timeout" twice; give each key once"#);
    let v: serde_json::Value = call(&server, "GET", "/admin/settings/session", Some(&admin), None).await.1;
    assert_eq!(v["idle_timeout"], 1800, "nothing changed");
}

// ---- /userinfo media type ------------------------------------------------

#[tokio::test]
async fn userinfo_takes_a_body_token_only_from_the_exact_form_media_type() {
    let server = Server::start(&config(), &[]);
    let code = Browser::new().sign_in_for_code(&server, &web_query(), "alice", "alice-password", false).await;
    let access_token = s(&redeem(&server, &code).await, "access_token");
    let post = |content_type: &'static str| {
        server
            .http
            .post(server.url("/userinfo"))
            .header("content-type", content_type)
            .body(format!("access_token={access_token}"))
            .send()
    };
    for ok in ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"] {
        assert_eq!(post(ok).await.unwrap().status(), 200, "{ok}");
    }
    for bad in ["application/x-www-form-urlencodedx", "application/x-www-form-urlencoded-json; charset=utf-8"] {
        let resp = post(bad).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("invalid_request") && challenge.contains("Content-Type"), "{challenge}");
    }
}

// ---- https issuer --------------------------------------------------------

#[tokio::test]
async fn an_https_issuer_sends_hsts_and_host_prefixed_cookies() {
    // tenure behind a TLS-terminating proxy: the issuer is https.
    let server = Server::start(&config(), &[("TENURE_ISSUER", "https://login.example.test")]);
    let health = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.headers()["strict-transport-security"], "max-age=31536000");
    let page = Browser::new().authorize(&server, &web_query()).await;
    assert_eq!(page.headers()["strict-transport-security"], "max-age=31536000");
    let cookies: Vec<String> =
        page.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("__Host-tenure_csrf=")), "{cookies:?}");
    for c in &cookies {
        assert!(c.contains("; Secure") && c.contains("; Path=/") && !c.contains("Domain"), "{c}");
    }

    // An http issuer keeps plain names and sends no HSTS.
    let plain = Server::start(&config(), &[]);
    let page = Browser::new().authorize(&plain, &web_query()).await;
    assert!(page.headers().get("strict-transport-security").is_none());
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tenure_csrf=") && !cookie.contains("Secure"), "{cookie}");
}

// ---- families per session and client -------------------------------------

#[tokio::test]
async fn fifty_code_redemptions_in_one_session_leave_at_most_five_families_alive() {
    let server = Server::start(&config(), &[]);
    let browser = Browser::new();
    let mut refresh_tokens = Vec::new();
    let mut last = serde_json::Value::Null;
    for i in 0..50 {
        let code = if i == 0 {
            browser.sign_in_for_code(&server, &web_query(), "alice", "alice-password", false).await
        } else {
            browser.code_for(&server, &web_query()).await
        };
        last = redeem(&server, &code).await;
        refresh_tokens.push(s(&last, "refresh_token"));
    }
    // The five newest families live; every older refresh token fails.
    for (i, rt) in refresh_tokens.iter().enumerate() {
        let resp = refresh(&server, rt).await;
        if i >= 45 {
            assert_eq!(resp.status(), 200, "family {i} is among the newest five");
        } else {
            assert_eq!(resp.status(), 400, "family {i} was superseded");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    // /authorize still serves the session (single sign-on) ...
    let code = browser.code_for(&server, &web_query()).await;
    assert_eq!(code.len(), 43);
    // ... and the session listing shows it with its one client.
    let listing: serde_json::Value =
        call(&server, "GET", "/account/sessions", Some(&s(&last, "access_token")), None).await.1;
    let sessions = listing["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listing}");
    assert_eq!(sessions[0]["client_ids"], serde_json::json!(["web"]));
    // Each superseded family is audited.
    let admin = admin_token(&server).await;
    let audit: serde_json::Value = call(&server, "GET", "/admin/audit?limit=500", Some(&admin), None).await.1;
    let superseded = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "family_revoked" && e["reason"] == "superseded")
        .count();
    assert_eq!(superseded, 45, "{audit}");
}

#[tokio::test]
async fn refreshes_keep_the_browser_session_alive_for_single_sign_on() {
    // Idle 3 s: the session lives on through refreshes alone (SPEC 3), which
    // the store records on the session record. In process on a manual clock.
    let server = ManualServer::start(&config(), &[("TENURE_SESSION_IDLE_TIMEOUT", "3")]).await;
    let browser = Browser::new();
    let code = browser.sign_in_for_code(&server, &web_query(), "alice", "alice-password", false).await;
    let mut rt = s(&redeem(&server, &code).await, "refresh_token");
    for _ in 0..3 {
        // 2 s of 3 idle before each refresh.
        server.advance(2);
        let body: serde_json::Value = refresh(&server, &rt).await.json().await.unwrap();
        rt = s(&body, "refresh_token");
    }
    // 6 s after sign-in, 3 s idle would have ended a session without activity.
    let code = browser.code_for(&server, &web_query()).await;
    assert_eq!(code.len(), 43);
}
