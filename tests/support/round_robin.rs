//! A round-robin reverse proxy for replica tests (SPEC 12: "any request may
//! land at any replica"): a tiny HTTP/1.1 proxy on 127.0.0.1, written with
//! hyper, that sends each request to the next backend in turn, with no
//! stickiness at all, and counts where each one went.
//!
//! Bind it first, so that its address can be the replicas' issuer (the
//! console builds its redirect URI from the issuer, and browsers must come
//! back through the proxy), then start the replicas and hand their bases
//! over:
//!
//! ```ignore
//! let proxy = RoundRobin::bind().await;
//! let env = [("TENURE_ISSUER", proxy.base.as_str()), /* store, database */];
//! let a = Server::start(&config, &env);
//! let b = Server::start(&config, &env_with_a_keys);
//! proxy.set_backends(&[&a.base, &b.base]);
//! // ... requests to proxy.base ...
//! assert_eq!(proxy.counts(), vec![3, 3]);
//! let landed = proxy.take_landed(); // backend index of each request, in order
//! ```
//!
//! The request goes to the backend as it came (method, path, headers, `Host`
//! included, body); the answer comes back as the backend gave it (a
//! redirect is not followed). Each forwarded request opens its own
//! connection to its backend, so keep-alive on the client's side never pins
//! a client to a replica. Until backends are set, or when a backend cannot
//! be reached, the proxy answers `502`. The proxy stops when dropped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::Server;

#[derive(Default)]
struct Shared {
    /// `host:port` of each backend.
    backends: Mutex<Vec<String>>,
    /// The next request's turn (modulo the number of backends).
    turn: AtomicUsize,
    /// The backend index of each request forwarded so far, in order.
    landed: Mutex<Vec<usize>>,
}

/// The proxy (see the module documentation).
pub struct RoundRobin {
    /// `http://127.0.0.1:<port>`: what clients and the replicas' issuer use.
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RoundRobin {
    /// Listen on a free loopback port; no backends yet.
    pub async fn bind() -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let base = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| forward(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RoundRobin { base, shared, task }
    }

    /// The backends, by their base URL (`http://127.0.0.1:<port>`), in the
    /// order of their turns: request 0 goes to the first, request 1 to the
    /// second, and so on round the list. Resets the counts.
    pub fn set_backends(&self, bases: &[&str]) {
        let hosts = bases.iter().map(|b| b.trim_start_matches("http://").trim_end_matches('/').to_owned()).collect();
        *self.shared.backends.lock().unwrap() = hosts;
        self.shared.turn.store(0, Ordering::SeqCst);
        self.shared.landed.lock().unwrap().clear();
    }

    /// How many requests each backend got, by index.
    pub fn counts(&self) -> Vec<usize> {
        let n = self.shared.backends.lock().unwrap().len();
        let mut counts = vec![0; n];
        for &i in self.shared.landed.lock().unwrap().iter() {
            counts[i] += 1;
        }
        counts
    }

    /// The backend index of each request since the last call (or since
    /// the backends were set), in the order they were forwarded.
    pub fn take_landed(&self) -> Vec<usize> {
        std::mem::take(&mut *self.shared.landed.lock().unwrap())
    }

    /// `path` on the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The proxy as a [`Server`] (no process of its own), so the kit's
    /// helpers that take a server (`Browser`, `kit::sign_in`, ...) speak to
    /// the replicas through it.
    pub fn server(&self) -> Server {
        Server::in_process(self.base.clone(), tempfile::tempdir().expect("tempdir"), tokio::spawn(async {}))
    }
}

/// Replicas A and B of `config` on a fresh, migrated PostgreSQL database,
/// behind a new proxy whose address is their issuer; B shares A's keys
/// directory (as replicas share `keys/master.key`). `env` is added to both.
/// `None` without PostgreSQL (the harness says so once).
pub async fn replicas_behind_proxy(
    config: &str,
    env: &[(&str, &str)],
) -> Option<(crate::support::postgres::PgDatabase, RoundRobin, Server, Server)> {
    let db = crate::support::postgres::database().await?;
    crate::support::postgres::migrate(&db.url);
    let proxy = RoundRobin::bind().await;
    let mut shared = vec![
        ("TENURE_STORE", "postgres"),
        ("TENURE_DATABASE_URL", db.url.as_str()),
        ("TENURE_ISSUER", proxy.base.as_str()),
    ];
    shared.extend_from_slice(env);
    let a = Server::start(config, &shared);
    let keys = a.keys_dir().display().to_string();
    shared.push(("TENURE_KEYS_DIR", keys.as_str()));
    let b = Server::start(config, &shared);
    proxy.set_backends(&[&a.base, &b.base]);
    Some((db, proxy, a, b))
}

/// Assert that consecutive requests in `landed` went to different backends
/// (strict alternation over two or more backends), and that there were at
/// least `at_least` of them.
pub fn assert_alternated(landed: &[usize], at_least: usize) {
    assert!(landed.len() >= at_least, "only {} requests went through the proxy: {landed:?}", landed.len());
    for pair in landed.windows(2) {
        assert_ne!(pair[0], pair[1], "two consecutive requests landed on the same replica: {landed:?}");
    }
}

async fn forward(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = {
        let backends = shared.backends.lock().unwrap();
        if backends.is_empty() {
            None
        } else {
            let i = shared.turn.fetch_add(1, Ordering::SeqCst) % backends.len();
            shared.landed.lock().unwrap().push(i);
            Some(backends[i].clone())
        }
    };
    let Some(host) = host else { return Ok(bad_gateway("no backends yet")) };
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(bad_gateway("could not read the request body"));
    };
    let mut outgoing = Request::from_parts(parts, Full::new(body));
    // Hop-by-hop: one connection per forwarded request.
    outgoing.headers_mut().remove(hyper::header::CONNECTION);
    let Ok(stream) = TcpStream::connect(&host).await else { return Ok(bad_gateway("backend unreachable")) };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
        return Ok(bad_gateway("backend handshake failed"));
    };
    tokio::spawn(conn);
    let Ok(response) = sender.send_request(outgoing).await else { return Ok(bad_gateway("backend failed")) };
    let (parts, body) = response.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(bad_gateway("could not read the backend's body"));
    };
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn bad_gateway(why: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(why.as_bytes())));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
