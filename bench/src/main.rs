//! `tenure-bench`: a closed-loop load generator for a tenure server running on
//! this machine.
//!
//! It opens `--connections` keep-alive HTTP/1.1 connections; each sends one
//! request, reads the whole response body, and sends the next. After an
//! uncounted `--warmup`, it measures for `--duration` (or until
//! `--max-requests` counted requests) and reports throughput, the latency
//! percentiles p50/p90/p99/p99.9/max (from request sent to body fully read),
//! non-2xx responses and connection errors. More than 1 % failures makes the
//! exit code 1; bad arguments or an unreachable server make it 2.
//!
//! The generator runs on a current-thread tokio runtime by default
//! (`--threads 1`): on a small machine where the server shares the CPU, it
//! then takes at most one core. `--threads N` switches to a multi-thread
//! runtime with N workers, for machines with cores to spare.
//!
//! Only `http://` URLs on loopback (127.0.0.0/8, `::1`, `localhost`) are
//! accepted, and every run stops by itself: the duration is at most 300 s.
//!
//! ```text
//! # terminal 1 — tenure.toml holds a confidential client "bench" allowed client_credentials
//! cargo run --release
//! # terminal 2
//! cargo run --release -p tenure-bench -- token-cc --url http://127.0.0.1:8080 \
//!     --client-id bench --client-secret bench-secret --connections 32 --duration 10s
//! cargo run --release -p tenure-bench -- refresh --url http://127.0.0.1:8080 \
//!     --client-id web --client-secret web-secret --redirect-uri http://127.0.0.1:9000/callback \
//!     --username alice --password alice-password --scope openid --connections 32 --duration 10s
//! ```
//!
//! Scenarios are subcommands. Each implements [`Scenario`], which hands every
//! connection its own [`ConnState`]: that state builds the next request and
//! sees every response, so a stateful scenario (a refresh chain spending the
//! previous response's refresh_token) needs no locks.
//!
//! `refresh` first signs in once per connection, unmeasured and before the
//! warmup, through the real front channel (`/authorize`, the sign-in form,
//! `/login`, `/authorize` again, then the code at `/token`, with PKCE S256),
//! so each connection starts with a refresh token of its own family. Each
//! connection then spends the refresh token its previous response returned,
//! warmup included. A chain cannot survive an error: a non-2xx response, or a
//! connection lost before the answer was read (resending the same token would
//! be a reuse that revokes the family), ends that connection, and any chain
//! that ended early makes the exit code 1.

#![forbid(unsafe_code)]

use std::net::{Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, HeaderValue, LOCATION, SET_COOKIE, USER_AGENT};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::task::JoinSet;
use tokio::time::timeout_at;

const MAX_DURATION: Duration = Duration::from_secs(300);
const MAX_WARMUP: Duration = Duration::from_secs(60);
/// How long a request may run past the deadline before it is abandoned.
const GRACE: Duration = Duration::from_secs(5);
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
const MAX_FAILURE_RATIO: f64 = 0.01;
const EXCERPT_CHARS: usize = 300;
/// How long one unmeasured sign-in (four requests) may take.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(30);
/// Sign-ins in flight at once: each costs the server an argon2 verification.
const SIGN_IN_PARALLEL: usize = 4;
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");
/// The server's cookie names (`tenure::http::authorize`), copied so that this
/// crate does not link the server; a test checks that they still match.
const SESSION_COOKIE: &str = "tenure_session";
const CSRF_COOKIE: &str = "tenure_csrf";

#[derive(Parser)]
#[command(name = "tenure-bench", about = "Load generator for a tenure server on this machine (loopback only)")]
struct Cli {
    #[command(subcommand)]
    scenario: ScenarioCmd,
}

#[derive(Subcommand)]
enum ScenarioCmd {
    /// POST /token with grant_type=client_credentials and HTTP Basic client authentication.
    TokenCc {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        /// Space-separated scopes to request (default: none, i.e. the client's default).
        #[arg(long)]
        scope: Option<String>,
    },
    /// POST /token with grant_type=refresh_token: one refresh-token chain per
    /// connection, each request spending the refresh token of the previous
    /// response. Each chain starts with one unmeasured sign-in (authorization
    /// code flow with PKCE S256) before the warmup.
    Refresh {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long)]
        client_id: String,
        /// The client's secret, sent with HTTP Basic; without it the client is
        /// public and `client_id` goes in the form.
        #[arg(long)]
        client_secret: Option<String>,
        /// A redirect URI registered for the client (never contacted).
        #[arg(long)]
        redirect_uri: String,
        #[arg(long)]
        username: String,
        /// The user's password. Failed sign-ins are throttled by the server
        /// (5 per 5 minutes per username and address): a failure ends the run.
        #[arg(long, env = "TENURE_BENCH_PASSWORD", hide_env_values = true)]
        password: String,
        /// Space-separated scopes of the authorization request (default: none,
        /// i.e. the client's registered scopes).
        #[arg(long)]
        scope: Option<String>,
        /// DPoP (RFC 9449): each chain binds its family to an ES256 key of its
        /// own at code exchange and signs a fresh proof for every refresh,
        /// with the server's latest `DPoP-Nonce`. The proofs' `htu` is
        /// `--url` + `/token`, so `--url` must be the server's issuer.
        #[arg(long)]
        dpop: bool,
    },
    /// POST /introspect of live user access tokens, with HTTP Basic client
    /// authentication (a confidential client). A few users sessions are
    /// signed in first (not measured); every answer must be `"active":true`,
    /// which tenure decides by checking the token's family, session and user
    /// in the store on every request.
    Introspect {
        #[command(flatten)]
        run: RunArgs,
        /// A confidential client: signs the sessions in, then introspects.
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long)]
        redirect_uri: String,
        #[arg(long)]
        username: String,
        #[arg(long, env = "TENURE_BENCH_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        scope: Option<String>,
        /// User sessions whose access tokens the connections introspect.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        sessions: u16,
    },
}

impl ScenarioCmd {
    fn run_args(&self) -> &RunArgs {
        match self {
            ScenarioCmd::TokenCc { run, .. }
            | ScenarioCmd::Refresh { run, .. }
            | ScenarioCmd::Introspect { run, .. } => run,
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the server: http:// on 127.0.0.0/8, [::1] or localhost.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent keep-alive connections, each sending requests back to back.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Measured period after the warmup: `10s`, `500ms`, `1m` or plain seconds; at most 300 s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Uncounted period before measuring; at most 60 s.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Stop after this many counted requests.
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: u64,
    /// Runtime threads for the generator. The default, 1, runs a current-thread
    /// runtime: the generator then uses at most one core and leaves the rest to
    /// a server on the same (small) machine; larger values run a multi-thread
    /// runtime with that many workers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Print one JSON object instead of the human-readable summary.
    #[arg(long)]
    json: bool,
}

/// `10s`, `500ms`, `1m`, or plain (whole) seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit): (&str, fn(u64) -> Duration) = if let Some(n) = s.strip_suffix("ms") {
        (n, Duration::from_millis)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, Duration::from_secs)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, |m| Duration::from_secs(m.saturating_mul(60)))
    } else {
        (s, Duration::from_secs)
    };
    let n: u64 = digits.trim().parse().map_err(|_| format!("{s:?} is not a duration like 10s, 500ms, 1m or 10"))?;
    Ok(unit(n))
}

/// Parse `raw` and refuse anything but plain HTTP to a loopback host.
fn loopback_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("--url {raw:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("--url {raw:?}: only http:// is supported"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    if !loopback {
        return Err(format!("--url {raw:?}: refusing a non-loopback target; use 127.0.0.0/8, [::1] or localhost"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("--url {raw:?}: give only scheme, host, port and an optional base path"));
    }
    Ok(url)
}

/// Where requests go: a resolved loopback address plus what to put in them.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    base: String,
}

impl Target {
    async fn resolve(url: &url::Url) -> Result<Target, String> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .find(|a| a.ip().is_loopback())
            .ok_or_else(|| format!("{host} does not resolve to a loopback address"))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let host = HeaderValue::from_str(&authority).map_err(|e| format!("bad host {authority:?}: {e}"))?;
        Ok(Target { addr, host, base: url.path().trim_end_matches('/').to_owned() })
    }

    fn uri(&self, endpoint: &str) -> Result<Uri, String> {
        let path = format!("{}/{endpoint}", self.base);
        path.parse().map_err(|e| format!("bad request path {path:?}: {e}"))
    }
}

/// A benchmark scenario, shared by all connections.
trait Scenario: Send + Sync + 'static {
    type Conn: ConnState;
    fn name(&self) -> &'static str;
    /// Fresh state for connection `index` (0-based).
    fn connection(&self, index: usize) -> Self::Conn;
}

/// One connection's view of a scenario.
trait ConnState: Send + 'static {
    fn next_request(&mut self) -> Request<Full<Bytes>>;
    /// Sees every response, warmup and failures included. An error ends this
    /// connection; it says why.
    fn on_response(&mut self, _status: StatusCode, _headers: &HeaderMap, _body: &Bytes) -> Result<(), String> {
        Ok(())
    }
    /// Whether the connection may go on after a request whose answer was lost
    /// (the server may or may not have processed it).
    fn survives_lost_response(&self) -> bool {
        true
    }
}

/// A request sent unchanged every time.
struct FixedRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl ConnState for Arc<FixedRequest> {
    fn next_request(&mut self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// `token-cc`: client-credentials grants.
struct TokenCc(Arc<FixedRequest>);

impl TokenCc {
    fn new(target: &Target, client_id: &str, client_secret: &str, scope: Option<&str>) -> Result<TokenCc, String> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host.clone());
        headers.insert(CONTENT_TYPE, FORM);
        headers.insert(AUTHORIZATION, basic_auth(client_id, client_secret)?);
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = scope {
            form.append_pair("scope", scope);
        }
        let body = Bytes::from(form.finish());
        Ok(TokenCc(Arc::new(FixedRequest { method: Method::POST, uri: target.uri("token")?, headers, body })))
    }
}

impl Scenario for TokenCc {
    type Conn = Arc<FixedRequest>;
    fn name(&self) -> &'static str {
        "token-cc"
    }
    fn connection(&self, _index: usize) -> Arc<FixedRequest> {
        self.0.clone()
    }
}

/// `Authorization: Basic` for a client (RFC 6749 2.3.1: id and secret are
/// form-urlencoded before base64).
fn basic_auth(client_id: &str, client_secret: &str) -> Result<HeaderValue, String> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret)));
    HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|e| format!("bad credentials: {e}"))
}

/// How a client authenticates at `/token`.
#[derive(Clone)]
enum ClientAuth {
    /// A confidential client: HTTP Basic.
    Basic(HeaderValue),
    /// A public client: its `client_id` in the form.
    Public(String),
}

impl ClientAuth {
    fn new(client_id: &str, client_secret: Option<&str>) -> Result<ClientAuth, String> {
        match client_secret {
            Some(secret) => Ok(ClientAuth::Basic(basic_auth(client_id, secret)?)),
            None => Ok(ClientAuth::Public(client_id.to_owned())),
        }
    }

    fn apply(&self, headers: &mut HeaderMap, form: &mut form_urlencoded::Serializer<'_, String>) {
        match self {
            ClientAuth::Basic(basic) => {
                headers.insert(AUTHORIZATION, basic.clone());
            }
            ClientAuth::Public(client_id) => {
                form.append_pair("client_id", client_id);
            }
        }
    }
}

/// What every refresh chain sends besides its token.
struct RefreshRequest {
    uri: Uri,
    auth: ClientAuth,
    headers: HeaderMap,
}

/// One connection's refresh-token chain.
struct RefreshChain {
    shared: Arc<RefreshRequest>,
    /// The refresh token of the last response: the next one to spend.
    token: String,
    /// With `--dpop`: the chain's key and the server's latest nonce.
    dpop: Option<Arc<DpopKey>>,
    nonce: Option<String>,
}

/// The start of a chain: its first refresh token, and its DPoP key.
#[derive(Clone)]
struct Chain {
    token: String,
    dpop: Option<Arc<DpopKey>>,
    /// The `DPoP-Nonce` of the code exchange's answer.
    nonce: Option<String>,
}

/// An ES256 DPoP key (RFC 9449) and the `htu` of the token endpoint.
struct DpopKey {
    pair: ring::signature::EcdsaKeyPair,
    rng: SystemRandom,
    /// The proof header, base64url: `typ`, `alg` and the public `jwk`.
    header: String,
    htu: String,
}

impl DpopKey {
    fn new(htu: &str) -> Result<DpopKey, String> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a DPoP key".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "cannot load the DPoP key".to_owned())?;
        let point = pair.public_key().as_ref();
        let (x, y) = (point.get(1..33).unwrap_or_default(), point.get(33..65).unwrap_or_default());
        let header = serde_json::json!({
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": { "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y) },
        });
        Ok(DpopKey { pair, rng, header: URL_SAFE_NO_PAD.encode(header.to_string()), htu: htu.to_owned() })
    }

    /// A fresh proof for `POST` to the token endpoint, with `nonce`.
    fn proof(&self, nonce: Option<&str>) -> Result<HeaderValue, String> {
        let mut claims = serde_json::json!({
            "jti": random_token()?,
            "htm": "POST",
            "htu": self.htu,
            "iat": unix_now(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        let input = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature =
            self.pair.sign(&self.rng, input.as_bytes()).map_err(|_| "cannot sign a DPoP proof".to_owned())?;
        HeaderValue::from_str(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
            .map_err(|e| format!("bad DPoP proof header: {e}"))
    }
}

/// Seconds since the Unix epoch, for a DPoP proof's `iat` (0 if the clock is
/// before 1970).
#[allow(clippy::disallowed_methods)] // a client stamping its proofs: no server clock to inject
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The `DPoP-Nonce` of a response, if any.
fn dpop_nonce(headers: &HeaderMap) -> Option<String> {
    headers.get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Whether a 400 answer says `use_dpop_nonce` (retry with the new nonce).
fn asks_for_nonce(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::BAD_REQUEST
        && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|b| b["error"] == "use_dpop_nonce")
}

#[derive(serde::Deserialize)]
struct TokenBody {
    refresh_token: Option<String>,
}

impl RefreshChain {
    fn body(&self, headers: &mut HeaderMap) -> Bytes {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token");
        form.append_pair("refresh_token", &self.token);
        self.shared.auth.apply(headers, &mut form);
        Bytes::from(form.finish())
    }
}

impl ConnState for RefreshChain {
    fn next_request(&mut self) -> Request<Full<Bytes>> {
        let mut headers = self.shared.headers.clone();
        if let Some(key) = &self.dpop {
            match key.proof(self.nonce.as_deref()) {
                Ok(proof) => {
                    headers.insert("dpop", proof);
                }
                // Sent without a proof, the server refuses and the chain ends.
                Err(e) => eprintln!("tenure-bench: {e}"),
            }
        }
        let body = self.body(&mut headers);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.shared.uri.clone();
        *request.headers_mut() = headers;
        request
    }

    fn on_response(&mut self, status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Result<(), String> {
        if self.dpop.is_some() {
            if let Some(nonce) = dpop_nonce(headers) {
                self.nonce = Some(nonce);
            }
            // Nothing rotated: the same token goes again, with the nonce.
            if asks_for_nonce(status, body) {
                return Ok(());
            }
        }
        if !status.is_success() {
            return Err(format!("{status}: {}", excerpt(body)));
        }
        match serde_json::from_slice::<TokenBody>(body) {
            Ok(TokenBody { refresh_token: Some(token) }) => {
                self.token = token;
                Ok(())
            }
            Ok(TokenBody { refresh_token: None }) => {
                Err(format!("{status} without a refresh_token: {}", excerpt(body)))
            }
            Err(e) => Err(format!("{status} with a body that is not a token response ({e}): {}", excerpt(body))),
        }
    }

    /// The lost request may have spent the token; sending it again would be
    /// a reuse, which revokes the whole family.
    fn survives_lost_response(&self) -> bool {
        false
    }
}

/// `refresh`: one refresh-token chain per connection.
struct Refresh {
    shared: Arc<RefreshRequest>,
    /// The first refresh token (and DPoP key) of each chain.
    tokens: Vec<Chain>,
}

impl Refresh {
    fn new(target: &Target, auth: ClientAuth, tokens: Vec<Chain>) -> Result<Refresh, String> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host.clone());
        headers.insert(CONTENT_TYPE, FORM);
        Ok(Refresh { shared: Arc::new(RefreshRequest { uri: target.uri("token")?, auth, headers }), tokens })
    }
}

impl Scenario for Refresh {
    type Conn = RefreshChain;
    fn name(&self) -> &'static str {
        "refresh"
    }
    fn connection(&self, index: usize) -> RefreshChain {
        let chain = self.tokens.get(index).cloned();
        RefreshChain {
            shared: self.shared.clone(),
            token: chain.as_ref().map(|c| c.token.clone()).unwrap_or_default(),
            nonce: chain.as_ref().and_then(|c| c.nonce.clone()),
            dpop: chain.and_then(|c| c.dpop),
        }
    }
}

/// One connection of `introspect`: the same request, and every answer must
/// say the token is active.
struct IntrospectConn(Arc<FixedRequest>);

impl ConnState for IntrospectConn {
    fn next_request(&mut self) -> Request<Full<Bytes>> {
        self.0.next_request()
    }

    fn on_response(&mut self, status: StatusCode, _headers: &HeaderMap, body: &Bytes) -> Result<(), String> {
        if !status.is_success() {
            return Err(format!("{status}: {}", excerpt(body)));
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if v["active"] == true => Ok(()),
            _ => Err(format!("{status}, but the token is not active: {}", excerpt(body))),
        }
    }
}

/// `introspect`: connection `i` introspects access token `i mod n`.
struct Introspect(Vec<Arc<FixedRequest>>);

impl Introspect {
    fn new(
        target: &Target,
        client_id: &str,
        client_secret: &str,
        access_tokens: &[String],
    ) -> Result<Introspect, String> {
        let mut requests = Vec::with_capacity(access_tokens.len());
        for token in access_tokens {
            let mut headers = HeaderMap::new();
            headers.insert(HOST, target.host.clone());
            headers.insert(CONTENT_TYPE, FORM);
            headers.insert(AUTHORIZATION, basic_auth(client_id, client_secret)?);
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            let body = Bytes::from(form.finish());
            requests.push(Arc::new(FixedRequest {
                method: Method::POST,
                uri: target.uri("introspect")?,
                headers,
                body,
            }));
        }
        if requests.is_empty() {
            return Err("setup: no access token to introspect".to_owned());
        }
        Ok(Introspect(requests))
    }
}

impl Scenario for Introspect {
    type Conn = IntrospectConn;
    fn name(&self) -> &'static str {
        "introspect"
    }
    fn connection(&self, index: usize) -> IntrospectConn {
        IntrospectConn(self.0[index % self.0.len()].clone())
    }
}

/// What the unmeasured sign-ins of `refresh` need.
#[derive(Clone)]
struct SignIn {
    target: Target,
    /// The `--url`, to resolve `Location` headers against.
    base: url::Url,
    client_id: String,
    auth: ClientAuth,
    redirect_uri: String,
    username: String,
    password: String,
    scope: Option<String>,
    /// With `--dpop`: the `htu` of the token endpoint; each chain gets a key.
    dpop_htu: Option<String>,
}

/// A response read in full.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// What went wrong, for a message: the alert of an HTML page, else the
    /// start of the body.
    fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let detail = alert_text(&text).unwrap_or_else(|| excerpt(&self.body));
        match self.location() {
            Some(location) => format!("{} (Location: {location}) {detail}", self.status),
            None => format!("{}: {detail}", self.status),
        }
    }
}

/// One keep-alive connection for a sign-in. A connection the server closed
/// while idle is replaced; a request is never sent twice.
struct Browser<'a> {
    target: &'a Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Browser<'_> {
    async fn send(&mut self, method: Method, path: &str, mut headers: HeaderMap, body: Bytes) -> Result<Reply, String> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let uri: Uri = path.parse().map_err(|e| format!("{what}: bad path: {e}"))?;
        headers.insert(HOST, self.target.host.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static("tenure-bench"));
        let mut sender = match self.sender.take() {
            Some(sender) => sender,
            None => connect(self.target.addr).await?,
        };
        if sender.ready().await.is_err() {
            sender = connect(self.target.addr).await?;
            sender.ready().await.map_err(|e| format!("{what}: {e}"))?;
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let response = sender.send_request(request).await.map_err(|e| format!("{what}: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("{what}: reading the body: {e}"))?.to_bytes();
        self.sender = Some(sender);
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}

impl SignIn {
    /// `/authorize?...` for a code with PKCE S256.
    fn authorize_path(&self, state: &str, challenge: &str) -> Result<String, String> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("response_type", "code");
        query.append_pair("client_id", &self.client_id);
        query.append_pair("redirect_uri", &self.redirect_uri);
        if let Some(scope) = &self.scope {
            query.append_pair("scope", scope);
        }
        query.append_pair("state", state);
        query.append_pair("code_challenge", challenge);
        query.append_pair("code_challenge_method", "S256");
        Ok(format!("{}?{}", self.target.uri("authorize")?, query.finish()))
    }

    /// Sign in through the front channel and redeem the code: the first
    /// refresh token of a new family. Never retried: failed sign-ins are
    /// throttled.
    async fn refresh_token(&self) -> Result<Chain, String> {
        let mut browser = Browser { target: &self.target, sender: None };
        let (verifier, challenge) = pkce_pair()?;
        let state = random_token()?;

        // 1. The authorization request shows the sign-in page.
        let authorize = self.authorize_path(&state, &challenge)?;
        let page = browser.send(Method::GET, &authorize, HeaderMap::new(), Bytes::new()).await?;
        if page.status != StatusCode::OK {
            return Err(format!("GET /authorize did not show the sign-in page: {}", page.describe()));
        }
        let csrf_cookie = set_cookie(&page.headers, CSRF_COOKIE)
            .ok_or_else(|| format!("GET /authorize set no {CSRF_COOKIE} cookie"))?;
        let html = String::from_utf8_lossy(&page.body);
        let field = |name: &str| {
            hidden_input(&html, name).ok_or_else(|| format!("the sign-in page has no hidden input {name:?}"))
        };
        let (csrf_token, return_to) = (field("csrf_token")?, field("return_to")?);

        // 2. The sign-in form: a 303 back to /authorize and a session cookie.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, FORM);
        headers.insert(COOKIE, cookie_header(&[(CSRF_COOKIE, &csrf_cookie)])?);
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf_token", &csrf_token)
            .append_pair("return_to", &return_to)
            .append_pair("username", &self.username)
            .append_pair("password", &self.password)
            .finish();
        let signed_in =
            browser.send(Method::POST, &self.target.uri("login")?.to_string(), headers, form.into()).await?;
        if signed_in.status != StatusCode::SEE_OTHER {
            let hint = match signed_in.status {
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS => {
                    " (not retried: the server throttles failed sign-ins, 5 per 5 minutes per username and address)"
                }
                _ => "",
            };
            return Err(format!("POST /login as {:?} failed: {}{hint}", self.username, signed_in.describe()));
        }
        let session_cookie = set_cookie(&signed_in.headers, SESSION_COOKIE)
            .ok_or_else(|| format!("POST /login set no {SESSION_COOKIE} cookie"))?;
        let next = signed_in.location().ok_or("POST /login answered 303 without a Location")?;
        let next = same_origin_path(&self.base, next)?;

        // 3. Back at /authorize, signed in: a redirect to the client with a code.
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, cookie_header(&[(CSRF_COOKIE, &csrf_cookie), (SESSION_COOKIE, &session_cookie)])?);
        let issued = browser.send(Method::GET, &next, headers, Bytes::new()).await?;
        let location = match issued.location() {
            Some(location) if issued.status == StatusCode::FOUND && location.starts_with(&self.redirect_uri) => {
                location
            }
            _ => {
                return Err(format!(
                    "GET /authorize after sign-in did not redirect to the client: {}",
                    issued.describe()
                ));
            }
        };
        if let Some(error) = query_param(location, "error") {
            let description = query_param(location, "error_description").unwrap_or_default();
            return Err(format!("the authorization request was refused: {error}: {description}"));
        }
        if query_param(location, "state").as_deref() != Some(state.as_str()) {
            return Err(format!("the redirect to the client does not carry our state: {location}"));
        }
        let code = query_param(location, "code").ok_or_else(|| format!("the redirect carries no code: {location}"))?;

        // 4. The code for tokens.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, FORM);
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", &code);
            form.append_pair("redirect_uri", &self.redirect_uri);
            form.append_pair("code_verifier", &verifier);
            self.auth.apply(&mut headers, &mut form);
            Bytes::from(form.finish())
        };
        let path = self.target.uri("token")?.to_string();
        let dpop = self.dpop_htu.as_deref().map(DpopKey::new).transpose()?.map(Arc::new);
        let tokens = match &dpop {
            None => browser.send(Method::POST, &path, headers, body).await?,
            Some(key) => {
                let mut first = headers.clone();
                first.insert("dpop", key.proof(None)?);
                let reply = browser.send(Method::POST, &path, first, body.clone()).await?;
                if asks_for_nonce(reply.status, &reply.body) {
                    let mut again = headers;
                    again.insert("dpop", key.proof(dpop_nonce(&reply.headers).as_deref())?);
                    browser.send(Method::POST, &path, again, body).await?
                } else {
                    reply
                }
            }
        };
        if !tokens.status.is_success() {
            return Err(format!("redeeming the code at /token failed: {}", tokens.describe()));
        }
        match serde_json::from_slice::<TokenBody>(&tokens.body) {
            Ok(TokenBody { refresh_token: Some(token) }) => {
                Ok(Chain { token, dpop, nonce: dpop_nonce(&tokens.headers) })
            }
            Ok(TokenBody { refresh_token: None }) => Err(format!(
                "the code was redeemed without a refresh_token: is client {:?} allowed the refresh_token grant?",
                self.client_id
            )),
            Err(e) => Err(format!("the token response is not JSON ({e}): {}", excerpt(&tokens.body))),
        }
    }
}

impl SignIn {
    /// Spend `refresh_token` once for an access token (setup, not measured).
    async fn access_token(&self, refresh_token: &str) -> Result<String, String> {
        let mut browser = Browser { target: &self.target, sender: None };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, FORM);
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token);
            self.auth.apply(&mut headers, &mut form);
            Bytes::from(form.finish())
        };
        let path = self.target.uri("token")?.to_string();
        let reply = browser.send(Method::POST, &path, headers, body).await?;
        if !reply.status.is_success() {
            return Err(format!("setup: refreshing for an access token failed: {}", reply.describe()));
        }
        #[derive(serde::Deserialize)]
        struct Access {
            access_token: String,
        }
        serde_json::from_slice::<Access>(&reply.body)
            .map(|a| a.access_token)
            .map_err(|e| format!("setup: the token response has no access_token ({e}): {}", excerpt(&reply.body)))
    }
}

/// One refresh token per chain. The first sign-in runs alone, so wrong
/// credentials cost one failed attempt, not one per connection; the rest run
/// [`SIGN_IN_PARALLEL`] at a time. Any failure ends the setup.
async fn sign_in_chains(sign_in: SignIn, chains: usize) -> Result<Vec<Chain>, String> {
    let sign_in = Arc::new(sign_in);
    let once = |sign_in: Arc<SignIn>| async move {
        tokio::time::timeout(SIGN_IN_TIMEOUT, sign_in.refresh_token())
            .await
            .map_err(|_| format!("a sign-in took more than {} s", SIGN_IN_TIMEOUT.as_secs()))?
    };
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(chains);
    tokens.push(once(sign_in.clone()).await.map_err(|e| format!("setup: {e}"))?);
    let mut pending = JoinSet::new();
    let mut spawned = 1;
    while tokens.len() < chains {
        while spawned < chains && pending.len() < SIGN_IN_PARALLEL {
            pending.spawn(once(sign_in.clone()));
            spawned += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(token))) => tokens.push(token),
            Some(Ok(Err(e))) => return Err(format!("setup, sign-in {} of {chains}: {e}", tokens.len() + 1)),
            Some(Err(e)) => return Err(format!("setup: a sign-in task failed: {e}")),
            None => return Err("setup: ran out of sign-ins".to_owned()),
        }
    }
    let plural = if chains == 1 { "" } else { "s" };
    eprintln!(
        "tenure-bench: signed in {chains} chain{plural} in {:.3} s (not measured)",
        started.elapsed().as_secs_f64()
    );
    Ok(tokens)
}

/// 32 random bytes, base64url: a PKCE verifier (RFC 7636 4.1) or a state.
fn random_token() -> Result<String, String> {
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw).map_err(|_| "no randomness".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// The S256 challenge of a PKCE verifier (RFC 7636 4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A fresh PKCE verifier and its challenge.
fn pkce_pair() -> Result<(String, String), String> {
    let verifier = random_token()?;
    let challenge = s256(&verifier);
    Ok((verifier, challenge))
}

/// The value of cookie `name` in the `Set-Cookie` headers, without attributes.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find_map(|(k, v)| (k.trim() == name).then(|| v.trim().to_owned()))
}

/// A `Cookie` header with these name/value pairs.
fn cookie_header(cookies: &[(&str, &str)]) -> Result<HeaderValue, String> {
    let joined: Vec<String> = cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
    HeaderValue::from_str(&joined.join("; ")).map_err(|e| format!("bad cookie: {e}"))
}

/// The unescaped value of the hidden input named `name` in `html`.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let name_attr = format!("name=\"{name}\"");
    html.match_indices("<input").find_map(|(at, _)| {
        let tag = &html[at..at + html[at..].find('>')?];
        if !tag.contains("type=\"hidden\"") || !tag.split_ascii_whitespace().any(|a| a == name_attr) {
            return None;
        }
        let value = tag.split_once(" value=\"")?.1;
        Some(unescape_html(&value[..value.find('"')?]))
    })
}

/// The text of the first `role="alert"` element of an HTML page.
fn alert_text(html: &str) -> Option<String> {
    let text = html.split_once("role=\"alert\">")?.1;
    Some(unescape_html(&text[..text.find('<')?]))
}

/// Undo the server's HTML escaping (`&amp; &lt; &gt; &quot; &#39;`), in one
/// pass so `&amp;lt;` stays `&lt;`.
fn unescape_html(s: &str) -> String {
    const ENTITIES: [(&str, char); 5] =
        [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"'), ("&#39;", '\'')];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, c)) => {
                out.push(*c);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parameter `name` of the query of `url`, form-urldecoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The path and query of `location` resolved against `base`, which it must
/// not leave: the bench follows redirects only on the server it tests.
fn same_origin_path(base: &url::Url, location: &str) -> Result<String, String> {
    let next = base.join(location).map_err(|e| format!("bad Location {location:?}: {e}"))?;
    if next.origin() != base.origin() {
        return Err(format!("refusing to follow a redirect off the server: {location}"));
    }
    Ok(next[url::Position::BeforePath..url::Position::AfterQuery].to_owned())
}

/// The start of a response body, for messages.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

/// The time plan and request budget all connections share.
struct Plan {
    measure_from: Instant,
    deadline: Instant,
    hard_stop: tokio::time::Instant,
    max_requests: u64,
    counted: AtomicU64,
}

impl Plan {
    /// Claim one counted request; false once the budget is spent.
    fn claim(&self) -> bool {
        self.counted.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

/// What one connection measured.
#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<(Instant, String)>,
    first_error: Option<(Instant, String)>,
    /// Why the connection ended before the deadline, if it did.
    stopped: Option<(Instant, String)>,
    last_done: Option<Instant>,
}

impl ConnStats {
    fn response(&mut self, start: Instant, done: Instant, status: StatusCode, body: &Bytes) {
        self.latencies_us.push(u32::try_from(done.duration_since(start).as_micros()).unwrap_or(u32::MAX));
        self.last_done = Some(done);
        if !status.is_success() {
            self.non_2xx += 1;
            self.first_failure.get_or_insert_with(|| (done, format!("{status}: {}", excerpt(body))));
        }
    }

    fn error(&mut self, at: Instant, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert((at, message));
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One connection's loop: send, read the full body, repeat; reconnect after
/// errors or when the server closes the connection.
async fn drive<C: ConnState>(addr: SocketAddr, mut state: C, plan: Arc<Plan>) -> ConnStats {
    let mut stats = ConnStats::default();
    'connect: while Instant::now() < plan.deadline {
        let mut sender = match timeout_at(plan.hard_stop, connect(addr)).await {
            Ok(Ok(sender)) => sender,
            outcome => {
                let now = Instant::now();
                if now >= plan.measure_from {
                    let message = match outcome {
                        Ok(Err(e)) => e,
                        _ => format!("connecting to {addr} timed out"),
                    };
                    stats.error(now, message);
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        loop {
            if !matches!(timeout_at(plan.hard_stop, sender.ready()).await, Ok(Ok(()))) {
                continue 'connect; // closed by the server: not a request failure
            }
            let start = Instant::now();
            if start >= plan.deadline {
                break 'connect;
            }
            let counted = start >= plan.measure_from;
            if counted && !plan.claim() {
                break 'connect;
            }
            let exchange = async {
                let response = sender.send_request(state.next_request()).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, headers, body))
            };
            let outcome = timeout_at(plan.hard_stop, exchange).await;
            let done = Instant::now();
            match outcome {
                Ok(Ok((status, headers, body))) => {
                    if counted {
                        stats.response(start, done, status, &body);
                    }
                    if let Err(reason) = state.on_response(status, &headers, &body) {
                        stats.stopped = Some((done, reason));
                        break 'connect;
                    }
                }
                Ok(Err(e)) => {
                    if counted {
                        stats.error(done, format!("request failed: {e}"));
                    }
                    if !state.survives_lost_response() {
                        stats.stopped = Some((done, format!("request failed, answer lost: {e}")));
                        break 'connect;
                    }
                    continue 'connect;
                }
                Err(_) => {
                    if counted {
                        stats.error(done, "request still unanswered at the hard stop".to_owned());
                    }
                    break 'connect;
                }
            }
        }
    }
    stats
}

/// Nearest-rank percentile of ascending `sorted` samples, with the percentile
/// in thousandths (`999` is p99.9) so the rank is exact integer arithmetic;
/// 0 when empty.
fn percentile(sorted: &[u32], per_mille: usize) -> u32 {
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied().unwrap_or(0)
}

struct Summary {
    scenario: &'static str,
    connections: u16,
    elapsed: Duration,
    requests: u64,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<String>,
    first_error: Option<String>,
    /// Connections that ended before the deadline, and the first reason.
    stopped: u64,
    first_stop: Option<String>,
    /// p50, p90, p99, p99.9, max, in microseconds.
    latency_us: [u32; 5],
}

impl Summary {
    fn merge(scenario: &'static str, connections: u16, plan: &Plan, all: Vec<ConnStats>) -> Summary {
        let earliest = |items: Vec<(Instant, String)>| items.into_iter().min_by_key(|(t, _)| *t).map(|(_, m)| m);
        let end = all.iter().filter_map(|s| s.last_done).max().unwrap_or(plan.deadline);
        let mut latencies: Vec<u32> = Vec::with_capacity(all.iter().map(|s| s.latencies_us.len()).sum());
        let (mut non_2xx, mut errors, mut failures, mut conn_errors) = (0, 0, Vec::new(), Vec::new());
        let mut stops = Vec::new();
        for stats in all {
            latencies.extend_from_slice(&stats.latencies_us);
            non_2xx += stats.non_2xx;
            errors += stats.errors;
            failures.extend(stats.first_failure);
            conn_errors.extend(stats.first_error);
            stops.extend(stats.stopped);
        }
        latencies.sort_unstable();
        let latency_us = [500, 900, 990, 999, 1000].map(|p| percentile(&latencies, p));
        Summary {
            scenario,
            connections,
            elapsed: end.saturating_duration_since(plan.measure_from).max(Duration::from_micros(1)),
            requests: latencies.len() as u64,
            non_2xx,
            errors,
            first_failure: earliest(failures),
            first_error: earliest(conn_errors),
            stopped: stops.len() as u64,
            first_stop: earliest(stops),
            latency_us,
        }
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// More than 1 % of attempts failed, a connection ended early (a broken
    /// refresh chain), or nothing was measured at all.
    fn failed(&self) -> bool {
        let attempts = self.requests + self.errors;
        attempts == 0 || self.stopped > 0 || (self.non_2xx + self.errors) as f64 > MAX_FAILURE_RATIO * attempts as f64
    }

    fn print(&self, json: bool) {
        let ms = |us: u32| f64::from(us) / 1000.0;
        let [p50, p90, p99, p999, max] = self.latency_us.map(ms);
        if json {
            let object = serde_json::json!({
                "scenario": self.scenario, "connections": self.connections,
                "duration_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                "requests": self.requests, "non_2xx": self.non_2xx, "errors": self.errors,
                "stopped_connections": self.stopped,
                "rps": (self.rps() * 10.0).round() / 10.0,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "p999_ms": p999, "max_ms": max,
            });
            println!("{object}");
            return;
        }
        println!("scenario     {} over {} connections", self.scenario, self.connections);
        println!("requests     {} in {:.3} s = {:.1} req/s", self.requests, self.elapsed.as_secs_f64(), self.rps());
        println!("failures     {} non-2xx, {} connection errors", self.non_2xx, self.errors);
        println!("latency ms   p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}");
        if let Some(body) = &self.first_failure {
            println!("first non-2xx  {body}");
        }
        if let Some(error) = &self.first_error {
            println!("first error    {error}");
        }
        if let Some(reason) = &self.first_stop {
            println!(
                "stopped        {} of {} connections ended early; first: {reason}",
                self.stopped, self.connections
            );
        }
    }
}

/// Fail fast, with a clear message, when nothing is listening.
async fn probe(target: &Target) -> Result<(), String> {
    let probe = tokio::time::timeout(GRACE, connect(target.addr)).await;
    probe
        .map_err(|_| format!("connecting to {} timed out", target.addr))?
        .map_err(|e| format!("{e} (is the server running?)"))?;
    Ok(())
}

async fn bench<S: Scenario>(scenario: S, target: &Target, args: &RunArgs) -> Result<Summary, String> {
    probe(target).await?;
    let start = Instant::now();
    let deadline = start + args.warmup + args.duration;
    let plan = Arc::new(Plan {
        measure_from: start + args.warmup,
        deadline,
        hard_stop: tokio::time::Instant::from_std(deadline + GRACE),
        max_requests: args.max_requests,
        counted: AtomicU64::new(0),
    });
    let tasks: Vec<_> = (0..usize::from(args.connections))
        .map(|i| tokio::spawn(drive(target.addr, scenario.connection(i), plan.clone())))
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        all.push(task.await.map_err(|e| format!("a connection task failed: {e}"))?);
    }
    Ok(Summary::merge(scenario.name(), args.connections, &plan, all))
}

fn run(cli: Cli) -> Result<Summary, String> {
    let run_args = cli.scenario.run_args();
    if run_args.duration.is_zero() || run_args.duration > MAX_DURATION {
        return Err(format!("--duration must be more than 0 and at most {} s", MAX_DURATION.as_secs()));
    }
    if run_args.warmup > MAX_WARMUP {
        return Err(format!("--warmup must be at most {} s", MAX_WARMUP.as_secs()));
    }
    let url = loopback_url(&run_args.url)?;
    let runtime = if run_args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(run_args.threads.into()).enable_all().build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let target = Target::resolve(&url).await?;
        match &cli.scenario {
            ScenarioCmd::TokenCc { run, client_id, client_secret, scope } => {
                bench(TokenCc::new(&target, client_id, client_secret, scope.as_deref())?, &target, run).await
            }
            ScenarioCmd::Refresh { run, client_id, client_secret, redirect_uri, username, password, scope, dpop } => {
                let auth = ClientAuth::new(client_id, client_secret.as_deref())?;
                probe(&target).await?;
                let sign_in = SignIn {
                    target: target.clone(),
                    base: url.clone(),
                    client_id: client_id.clone(),
                    auth: auth.clone(),
                    redirect_uri: redirect_uri.clone(),
                    username: username.clone(),
                    password: password.clone(),
                    scope: scope.clone(),
                    dpop_htu: dpop.then(|| format!("{}/token", url.as_str().trim_end_matches('/'))),
                };
                let tokens = sign_in_chains(sign_in, run.connections.into()).await?;
                bench(Refresh::new(&target, auth, tokens)?, &target, run).await
            }
            ScenarioCmd::Introspect {
                run,
                client_id,
                client_secret,
                redirect_uri,
                username,
                password,
                scope,
                sessions,
            } => {
                let auth = ClientAuth::new(client_id, Some(client_secret))?;
                probe(&target).await?;
                let sign_in = SignIn {
                    target: target.clone(),
                    base: url.clone(),
                    client_id: client_id.clone(),
                    auth,
                    redirect_uri: redirect_uri.clone(),
                    username: username.clone(),
                    password: password.clone(),
                    scope: scope.clone(),
                    dpop_htu: None,
                };
                let refresh_tokens = sign_in_chains(sign_in.clone(), (*sessions).into()).await?;
                let mut access_tokens = Vec::with_capacity(refresh_tokens.len());
                for chain in &refresh_tokens {
                    access_tokens.push(sign_in.access_token(&chain.token).await?);
                }
                bench(Introspect::new(&target, client_id, client_secret, &access_tokens)?, &target, run).await
            }
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.scenario.run_args().json;
    match run(cli) {
        Ok(summary) => {
            summary.print(json);
            if summary.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(message) => {
            eprintln!("tenure-bench: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn accepts_only_plain_http_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.8.7/",
            "http://[::1]:80",
            "http://localhost:1",
            "http://LOCALHOST/base",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8080",
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://[::ffff:127.0.0.1]/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://user:pw@127.0.0.1/",
            "127.0.0.1:8080",
        ] {
            assert!(loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "1h", "-1s", "1.5s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 500), 500);
        assert_eq!(percentile(&samples, 990), 990);
        assert_eq!(percentile(&samples, 999), 999);
        assert_eq!(percentile(&samples, 1000), 1000);
        assert_eq!(percentile(&[1, 2, 3], 500), 2);
        assert_eq!(percentile(&samples[..10], 999), 10);
        assert_eq!(percentile(&[7], 0), 7);
        assert_eq!(percentile(&[], 500), 0);
    }

    #[test]
    fn token_cc_request_and_cli() {
        Cli::command().debug_assert();
        let target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            host: HeaderValue::from_static("127.0.0.1:8080"),
            base: String::new(),
        };
        let mut conn = TokenCc::new(&target, "bench", "a:b", Some("orders:read")).expect("scenario").connection(0);
        let request = conn.next_request();
        assert_eq!((request.method(), request.uri().path()), (&Method::POST, "/token"));
        let expected = format!("Basic {}", STANDARD.encode("bench:a%3Ab"));
        assert_eq!(request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()), Some(expected.as_str()));
        assert_eq!(conn.body, Bytes::from_static(b"grant_type=client_credentials&scope=orders%3Aread"));
    }

    /// The markup of src/http/pages.rs, with values escaped as it escapes them.
    const SIGN_IN_PAGE: &str = r#"<p class="alert" id="form-error" role="alert">Wrong &quot;x&quot; &amp; y.</p>
<form method="post" action="/login" aria-describedby="form-error">
<input type="hidden" name="csrf_token" value="tok-_123">
<input type="hidden" name="return_to" value="response_type=code&amp;client_id=web&amp;state=&lt;&#39;s&#39;&gt;&amp;amp;">
<div class="field">
<input id="username" name="username" type="text" value="not&amp;hidden" autocomplete="username" required>
</div>"#;

    #[test]
    fn reads_hidden_inputs_and_alerts_unescaped() {
        assert_eq!(hidden_input(SIGN_IN_PAGE, "csrf_token").as_deref(), Some("tok-_123"));
        assert_eq!(
            hidden_input(SIGN_IN_PAGE, "return_to").as_deref(),
            Some("response_type=code&client_id=web&state=<'s'>&amp;")
        );
        assert_eq!(hidden_input(SIGN_IN_PAGE, "username"), None, "not a hidden input");
        assert_eq!(hidden_input(SIGN_IN_PAGE, "csrf"), None, "names match whole");
        assert_eq!(hidden_input("<p>no form</p>", "csrf_token"), None);
        assert_eq!(alert_text(SIGN_IN_PAGE).as_deref(), Some(r#"Wrong "x" & y."#));
        assert_eq!(unescape_html("&amp;lt; &unknown; & &#39;"), "&lt; &unknown; & '");
    }

    #[test]
    fn round_trips_the_servers_sign_in_page() {
        use tenure::http::pages::{SignInForm, sign_in};
        let return_to = "response_type=code&client_id=web&state=<\"'&amp;'\">&scope=openid%20profile";
        let html = sign_in(&SignInForm {
            app: "web",
            username: "alice",
            remember_me: false,
            error: Some("Wrong username or password."),
            csrf_token: "c2lnbmVk-_",
            return_to,
            action: "/login",
        });
        assert_eq!(hidden_input(&html, "csrf_token").as_deref(), Some("c2lnbmVk-_"));
        assert_eq!(hidden_input(&html, "return_to").as_deref(), Some(return_to));
        assert_eq!(alert_text(&html).as_deref(), Some("Wrong username or password."));
    }

    #[test]
    fn cookie_names_match_the_server() {
        assert_eq!(SESSION_COOKIE, tenure::http::authorize::SESSION_COOKIE);
        assert_eq!(CSRF_COOKIE, tenure::http::authorize::CSRF_COOKIE);
    }

    #[test]
    fn reads_set_cookie_values() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("tenure_csrf=abc-_1; HttpOnly; SameSite=Lax; Path=/"));
        headers.append(SET_COOKIE, HeaderValue::from_static("tenure_session=s1.t2=; HttpOnly; Path=/; Max-Age=60"));
        headers.append(SET_COOKIE, HeaderValue::from_static("other"));
        assert_eq!(set_cookie(&headers, "tenure_csrf").as_deref(), Some("abc-_1"));
        assert_eq!(set_cookie(&headers, "tenure_session").as_deref(), Some("s1.t2="));
        assert_eq!(set_cookie(&headers, "tenure"), None);
        assert_eq!(set_cookie(&HeaderMap::new(), "tenure_csrf"), None);
        let cookie = cookie_header(&[("tenure_csrf", "abc"), ("tenure_session", "s.t")]).expect("ascii");
        assert_eq!(cookie, "tenure_csrf=abc; tenure_session=s.t");
    }

    #[test]
    fn pkce_redirects_and_query_parameters() {
        // RFC 7636 appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let (verifier, challenge) = pkce_pair().expect("rng");
        assert_eq!((verifier.len(), challenge.len()), (43, 43));
        let base = url::Url::parse("http://127.0.0.1:8080").expect("url");
        assert_eq!(same_origin_path(&base, "/authorize?a=1&b=%2F").as_deref(), Ok("/authorize?a=1&b=%2F"));
        assert!(same_origin_path(&base, "http://127.0.0.1:9000/callback?code=x").is_err());
        let location = "http://127.0.0.1:9000/callback?code=a%2Bb+c&state=s&iss=http%3A%2F%2Fx";
        assert_eq!(query_param(location, "code").as_deref(), Some("a+b c"));
        assert_eq!(query_param(location, "iss").as_deref(), Some("http://x"));
        assert_eq!(query_param(location, "error"), None);
    }

    impl From<&str> for Chain {
        fn from(token: &str) -> Chain {
            Chain { token: token.to_owned(), dpop: None, nonce: None }
        }
    }

    #[test]
    fn dpop_chains_sign_a_fresh_proof_per_refresh_and_follow_the_nonce() {
        let target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            host: HeaderValue::from_static("127.0.0.1:8080"),
            base: String::new(),
        };
        let key = Arc::new(DpopKey::new("http://127.0.0.1:8080/token").expect("key"));
        let chain = Chain { token: "t0".into(), dpop: Some(key), nonce: None };
        let public = ClientAuth::new("spa", None).expect("auth");
        let mut conn = Refresh::new(&target, public, vec![chain]).expect("scenario").connection(0);
        let claims = |request: &Request<Full<Bytes>>| -> serde_json::Value {
            let proof = request.headers().get("dpop").expect("a DPoP header").to_str().expect("ascii").to_owned();
            let payload = proof.split('.').nth(1).expect("three parts");
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
        };
        let first = claims(&conn.next_request());
        assert_eq!((first["htm"].as_str(), first["htu"].as_str()), (Some("POST"), Some("http://127.0.0.1:8080/token")));
        assert!(first.get("nonce").is_none());
        let mut headers = HeaderMap::new();
        headers.insert("dpop-nonce", HeaderValue::from_static("n1"));
        let ask = Bytes::from_static(br#"{"error":"use_dpop_nonce"}"#);
        assert_eq!(conn.on_response(StatusCode::BAD_REQUEST, &headers, &ask), Ok(()), "retried, not fatal");
        let second = claims(&conn.next_request());
        assert_eq!(second["nonce"], "n1");
        assert_ne!(second["jti"], first["jti"], "a fresh proof per request");
        assert_eq!(conn.token, "t0", "the same token again: nothing rotated");
    }

    #[test]
    fn refresh_chains_spend_the_last_token() {
        let target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            host: HeaderValue::from_static("127.0.0.1:8080"),
            base: String::new(),
        };
        let public = ClientAuth::new("spa", None).expect("auth");
        let scenario = Refresh::new(&target, public, vec!["t0".into(), "u0".into()]).expect("scenario");
        let mut chain = scenario.connection(1);
        assert!(!chain.survives_lost_response());
        let request = chain.next_request();
        assert_eq!((request.method(), request.uri().path()), (&Method::POST, "/token"));
        assert_eq!(request.headers().get(AUTHORIZATION), None);
        let body = |request: Request<Full<Bytes>>| async move {
            request.into_body().collect().await.expect("body").to_bytes()
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(runtime.block_on(body(request)), "grant_type=refresh_token&refresh_token=u0&client_id=spa");
        let next = Bytes::from_static(br#"{"access_token":"a","refresh_token":"u1","expires_in":300}"#);
        assert_eq!(chain.on_response(StatusCode::OK, &HeaderMap::new(), &next), Ok(()));
        assert_eq!(
            runtime.block_on(body(chain.next_request())),
            "grant_type=refresh_token&refresh_token=u1&client_id=spa"
        );
        let reused = Bytes::from_static(br#"{"error":"invalid_grant"}"#);
        assert!(
            chain
                .on_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), &reused)
                .is_err_and(|e| e.contains("invalid_grant"))
        );
        assert!(chain.on_response(StatusCode::OK, &HeaderMap::new(), &Bytes::from_static(b"{}")).is_err());

        let confidential = ClientAuth::new("web", Some("web-secret")).expect("auth");
        let mut chain = Refresh::new(&target, confidential, vec!["t0".into()]).expect("scenario").connection(0);
        let request = chain.next_request();
        let expected = format!("Basic {}", STANDARD.encode("web:web-secret"));
        assert_eq!(request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()), Some(expected.as_str()));
        assert_eq!(runtime.block_on(body(request)), "grant_type=refresh_token&refresh_token=t0");
    }
}
