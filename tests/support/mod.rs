//! A real `tenure` process on 127.0.0.1:0 in a temporary directory, killed
//! when dropped; or, for the tests that move time, the same router served
//! in process on a manual clock ([`manual::ManualServer`]).

pub mod browser;
pub mod flow;
pub mod kit;
pub mod manual;
pub mod postgres;
pub mod round_robin;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub const BIN: &str = env!("CARGO_BIN_EXE_tenure");

/// The `tenure` binary with a clean environment (only `PATH`): the test
/// runner's own variables (`TENURE_REQUIRE_EXTERNAL` in CI, a developer's
/// `TENURE_LOG`) must not reach the server, which refuses unknown ones.
pub fn tenure() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// A config with one confidential service client and one admin service
/// account. `extra` is appended verbatim.
pub fn config_with(extra: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"

[[clients]]
id = "orders-api"
secret = "orders-secret"
grant_types = ["client_credentials"]
scopes = ["orders:read", "orders:write"]

[[clients]]
id = "automation"
secret = "automation-secret"
grant_types = ["client_credentials"]
scopes = ["admin"]
permissions = ["users:edit"]

{extra}
"#
    )
}

pub struct Server {
    /// The `tenure` process; `None` when served in process
    /// ([`manual::ManualServer`]).
    child: Option<Child>,
    /// The in-process server's task, ended on drop.
    task: Option<tokio::task::JoinHandle<()>>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Its log lines (stderr, still echoed to the test's stderr).
    log: Arc<Mutex<Vec<String>>>,
    /// Every line the server printed on standard output so far.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// At most this many log lines are kept per server.
const LOG_LINES_KEPT: usize = 10_000;

impl Server {
    /// Start with `config` as tenure.toml and extra environment variables.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config, env)
    }

    /// With `TENURE_STORE=postgres` and no issuer (in `TENURE_ISSUER` or the
    /// file; `serve` then requires one, SPEC 12), the server's issuer is its own address: a
    /// free loopback port is chosen first and given as `TENURE_LISTEN`,
    /// so browser flows that follow the issuer's URLs reach this server.
    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Server {
        std::fs::write(dir.path().join("tenure.toml"), config).expect("write config");
        let has = |key: &str| env.iter().any(|(k, _)| *k == key);
        let postgres = env.iter().any(|(k, v)| *k == "TENURE_STORE" && *v == "postgres");
        let issuer_in_file = config.lines().any(|l| l.trim_start().starts_with("issuer"));
        let own_issuer = (postgres && !has("TENURE_ISSUER") && !issuer_in_file).then(|| {
            let addr = match env.iter().find(|(k, _)| *k == "TENURE_LISTEN") {
                Some((_, listen)) => listen.to_string(),
                None => std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.to_string())
                    .expect("a free loopback port"),
            };
            (addr.clone(), format!("http://{addr}"))
        });
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TENURE_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some((listen, issuer)) = &own_issuer {
            cmd.env("TENURE_LISTEN", listen).env("TENURE_ISSUER", issuer);
        }
        let mut child = cmd.spawn().expect("spawn tenure");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() < LOG_LINES_KEPT {
                        log.push(line);
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("tenure listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("tenure did not report its address within 60 s");
            }
        };
        Server { child: Some(child), task: None, base, dir, http: reqwest::Client::new(), log, stdout: lines }
    }

    /// A server already listening at `base`, served by `task` in this
    /// process (see [`manual::ManualServer`]).
    pub fn in_process(base: String, dir: tempfile::TempDir, task: tokio::task::JoinHandle<()>) -> Server {
        let (log, stdout) = (Arc::default(), Arc::default());
        Server { child: None, task: Some(task), base, dir, http: reqwest::Client::new(), log, stdout }
    }

    /// The `tenure` process.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a tenure process, not an in-process server")
    }

    /// The process id of the `tenure` process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a tenure process, not an in-process server").id()
    }

    /// The lines the server has written to its log (stderr) so far; the
    /// level is `TENURE_LOG` (`error` unless the test passes another).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lines printed on standard output before and with the
    /// `tenure listening on` line (and any printed since).
    pub fn printed(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run the tenure CLI in this server's directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run tenure")
    }

    /// POST a form to `path` with optional Basic credentials.
    pub async fn post_form(&self, path: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req =
            self.http.post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("request")
    }

    /// A client-credentials token for `orders-api`.
    pub async fn cc_token(&self) -> String {
        let resp = self
            .post_form("/token", Some(("orders-api", "orders-secret")), &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self.http.get(self.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json")
    }

    pub async fn jwks(&self) -> JwkSet {
        serde_json::from_value(self.get_json("/jwks.json").await).expect("a JWK set")
    }

    /// Stop with SIGTERM and return the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child().try_wait() {
                return status;
            }
            // sleep: bounded polling in a synchronous function (eventually is async)
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tenure did not stop within 6 s of SIGTERM");
    }

    /// SIGKILL the process and hand back its directory for a restart.
    pub fn kill_keep_dir(mut self) -> tempfile::TempDir {
        let _ = self.child().kill();
        let _ = self.child().wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.path().join("keys")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Verify `token` against `jwks` with jsonwebtoken (not tenure's signer):
/// the key is chosen by `kid`, the algorithm comes from the JWK.
pub fn verify(token: &str, jwks: &JwkSet, issuer: &str, audience: &str) -> jsonwebtoken::TokenData<serde_json::Value> {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let alg = match jwk.common.key_algorithm.expect("alg in JWK") {
        jsonwebtoken::jwk::KeyAlgorithm::ES256 => Algorithm::ES256,
        jsonwebtoken::jwk::KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        jsonwebtoken::jwk::KeyAlgorithm::RS256 => Algorithm::RS256,
        other => panic!("unexpected algorithm {other:?}"),
    };
    assert_eq!(header.alg, alg, "the header names the key's algorithm");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).expect("valid signature and claims")
}

/// Poll `check` every 50 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // sleep: the polling step of eventually itself
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
