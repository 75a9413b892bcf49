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
//! cargo run --release --bin tenure-bench -- token-cc --url http://127.0.0.1:8080 \
//!     --client-id bench --client-secret bench-secret --connections 32 --duration 10s
//! ```
//!
//! Scenarios are subcommands. Each implements [`Scenario`], which hands every
//! connection its own [`ConnState`]: that state builds the next request and
//! sees every response, so a stateful scenario (a refresh chain spending the
//! previous response's refresh_token) needs no locks.

#![forbid(unsafe_code)]

use std::net::{Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::time::timeout_at;

const MAX_DURATION: Duration = Duration::from_secs(300);
const MAX_WARMUP: Duration = Duration::from_secs(60);
/// How long a request may run past the deadline before it is abandoned.
const GRACE: Duration = Duration::from_secs(5);
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
const MAX_FAILURE_RATIO: f64 = 0.01;
const EXCERPT_CHARS: usize = 300;

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
    /// Fresh state for one connection.
    fn connection(&self) -> Self::Conn;
}

/// One connection's view of a scenario.
trait ConnState: Send + 'static {
    fn next_request(&mut self) -> Request<Full<Bytes>>;
    /// Sees every response, warmup and failures included.
    fn on_response(&mut self, _status: StatusCode, _body: &Bytes) {}
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
        // RFC 6749 2.3.1: id and secret are form-urlencoded before base64.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret)));
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        let basic =
            HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|e| format!("bad credentials: {e}"))?;
        headers.insert(AUTHORIZATION, basic);
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
    fn connection(&self) -> Arc<FixedRequest> {
        self.0.clone()
    }
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
    last_done: Option<Instant>,
}

impl ConnStats {
    fn response(&mut self, start: Instant, done: Instant, status: StatusCode, body: &Bytes) {
        self.latencies_us.push(u32::try_from(done.duration_since(start).as_micros()).unwrap_or(u32::MAX));
        self.last_done = Some(done);
        if !status.is_success() {
            self.non_2xx += 1;
            let body: String = String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect();
            self.first_failure.get_or_insert_with(|| (done, format!("{status}: {body}")));
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
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            let outcome = timeout_at(plan.hard_stop, exchange).await;
            let done = Instant::now();
            match outcome {
                Ok(Ok((status, body))) => {
                    if counted {
                        stats.response(start, done, status, &body);
                    }
                    state.on_response(status, &body);
                }
                Ok(Err(e)) => {
                    if counted {
                        stats.error(done, format!("request failed: {e}"));
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
    /// p50, p90, p99, p99.9, max, in microseconds.
    latency_us: [u32; 5],
}

impl Summary {
    fn merge(scenario: &'static str, connections: u16, plan: &Plan, all: Vec<ConnStats>) -> Summary {
        let earliest = |items: Vec<(Instant, String)>| items.into_iter().min_by_key(|(t, _)| *t).map(|(_, m)| m);
        let end = all.iter().filter_map(|s| s.last_done).max().unwrap_or(plan.deadline);
        let mut latencies: Vec<u32> = Vec::with_capacity(all.iter().map(|s| s.latencies_us.len()).sum());
        let (mut non_2xx, mut errors, mut failures, mut conn_errors) = (0, 0, Vec::new(), Vec::new());
        for stats in all {
            latencies.extend_from_slice(&stats.latencies_us);
            non_2xx += stats.non_2xx;
            errors += stats.errors;
            failures.extend(stats.first_failure);
            conn_errors.extend(stats.first_error);
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
            latency_us,
        }
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// More than 1 % of attempts failed, or nothing was measured at all.
    fn failed(&self) -> bool {
        let attempts = self.requests + self.errors;
        attempts == 0 || (self.non_2xx + self.errors) as f64 > MAX_FAILURE_RATIO * attempts as f64
    }

    fn print(&self, json: bool) {
        let ms = |us: u32| f64::from(us) / 1000.0;
        let [p50, p90, p99, p999, max] = self.latency_us.map(ms);
        if json {
            let object = serde_json::json!({
                "scenario": self.scenario, "connections": self.connections,
                "duration_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
                "requests": self.requests, "non_2xx": self.non_2xx, "errors": self.errors,
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
    }
}

async fn bench<S: Scenario>(scenario: S, target: &Target, args: &RunArgs) -> Result<Summary, String> {
    // Fail fast, with a clear message, when nothing is listening.
    let probe = tokio::time::timeout(GRACE, connect(target.addr)).await;
    probe
        .map_err(|_| format!("connecting to {} timed out", target.addr))?
        .map_err(|e| format!("{e} (is the server running?)"))?;
    let start = Instant::now();
    let deadline = start + args.warmup + args.duration;
    let plan = Arc::new(Plan {
        measure_from: start + args.warmup,
        deadline,
        hard_stop: tokio::time::Instant::from_std(deadline + GRACE),
        max_requests: args.max_requests,
        counted: AtomicU64::new(0),
    });
    let tasks: Vec<_> =
        (0..args.connections).map(|_| tokio::spawn(drive(target.addr, scenario.connection(), plan.clone()))).collect();
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        all.push(task.await.map_err(|e| format!("a connection task failed: {e}"))?);
    }
    Ok(Summary::merge(scenario.name(), args.connections, &plan, all))
}

fn run(cli: Cli) -> Result<Summary, String> {
    let run_args = match &cli.scenario {
        ScenarioCmd::TokenCc { run, .. } => run,
    };
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
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.scenario {
        ScenarioCmd::TokenCc { run, .. } => run.json,
    };
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
        let mut conn = TokenCc::new(&target, "bench", "a:b", Some("orders:read")).expect("scenario").connection();
        let request = conn.next_request();
        assert_eq!((request.method(), request.uri().path()), (&Method::POST, "/token"));
        let expected = format!("Basic {}", STANDARD.encode("bench:a%3Ab"));
        assert_eq!(request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()), Some(expected.as_str()));
        assert_eq!(conn.body, Bytes::from_static(b"grant_type=client_credentials&scope=orders%3Aread"));
    }
}
