//! Serving connections: tenure's own accept loop over hyper's HTTP/1
//! connection, with the limits `axum::serve` does not have (operations doc,
//! "Connection limits and timeouts").
//!
//! - **Connection cap**: at most `max_connections` connections are served at
//!   once. A few more (a quarter of the cap, at least 16) are accepted and
//!   wait for a slot; the rest wait in the kernel's listen backlog (never an
//!   unbounded number of tasks).
//! - **Per-address limit**: one client address holds at most
//!   `max_connections_per_address` connections (served or waiting); more
//!   are closed at once. Connections from `trusted_proxies` are not counted
//!   per address (the proxy's own address stands for all its clients).
//! - **Turnover**: while a connection waits for a slot, one served
//!   connection is closed after its current request, chosen by
//!   [`crate::connections`]: the longest-held of an address holding far more
//!   slots than the waiter's, at once, else the longest-held of all once it
//!   has had its turn. And each kept-alive connection serves at most
//!   `max_requests_per_connection` requests (the last answer says
//!   `Connection: close`).
//! - **First-byte timeout**: a new connection is closed when no byte arrives
//!   within `first_byte_timeout` (or `keep_alive_timeout`, if shorter).
//! - **Keep-alive timeout**: a connection with no request in progress (after
//!   a response) is closed when no byte of a new request arrives within
//!   `keep_alive_timeout`.
//! - **Request header timeout**: once the first byte of a request has
//!   arrived, its whole head (request line and headers) must follow within
//!   `request_header_timeout`, however slowly it drips. A connection waits
//!   for a slot at most this long, too.
//! - **Request body timeout**: the whole body must arrive within
//!   `request_body_timeout` of the head; otherwise the answer is
//!   `408 Request Timeout` and the connection is closed.
//!
//! The read timeouts are enforced by [`TimedIo`], a wrapper around the
//! socket that knows the connection's [`Phase`]; the body timeout by
//! [`DeadlineBody`] around each request body. Graceful shutdown stops
//! accepting, lets requests in flight finish and closes idle and waiting
//! connections; the peer address reaches handlers as
//! `ConnectInfo<SocketAddr>`, as with `axum::serve`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ServerLimits;
use crate::connections::{ConnId, Registry, Room};
use crate::net::{TrustedProxies, canonical};

/// After a failed `accept` (out of file descriptors, ...), wait this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Descriptors kept for everything but client connections (the store,
/// keys, outbound deliveries, the database pool).
const OTHER_DESCRIPTORS: u64 = 256;

/// Connections accepted beyond the cap, waiting for a slot.
fn waiting_room(max_connections: usize) -> usize {
    (max_connections / 4).max(16)
}

type Connections = Arc<Mutex<Registry<Arc<Notify>>>>;

fn lock(connections: &Connections) -> MutexGuard<'_, Registry<Arc<Notify>>> {
    match connections.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Serve `router` on `listener` until `shutdown` completes, then stop
/// accepting and wait for the open connections to finish (requests in
/// flight complete; idle and waiting connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    trusted_proxies: TrustedProxies,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max_connections = limits.max_connections.max(1);
    let accepted_cap = max_connections + waiting_room(max_connections);
    fit_open_files(&limits, accepted_cap);
    let slots = Arc::new(Semaphore::new(max_connections));
    // Each connection's task holds one of these until it ends.
    let accepted = Arc::new(Semaphore::new(accepted_cap));
    let connections: Connections = Arc::new(Mutex::new(Registry::new(limits.max_connections_per_address)));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = accepted.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Limited per address unless it comes from a trusted proxy.
        let address = Some(canonical(peer.ip())).filter(|ip| !trusted_proxies.trusts(*ip));
        let close = Arc::new(Notify::new());
        let Some(id) = lock(&connections).admit(address, close.clone()) else {
            tracing::debug!(%peer, "closed a connection: its address holds server.max_connections_per_address");
            drop(stream);
            continue;
        };
        let ticket = Ticket { connections: connections.clone(), id, _accepted: permit };
        let conn = Connection { stream, peer, ticket, close, stopping: stopping.clone() };
        tokio::spawn(conn.run(slots.clone(), router.clone(), limits));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection's task returns its permit when it ends.
    let all = u32::try_from(accepted_cap).unwrap_or(u32::MAX);
    let _ = accepted.acquire_many(all).await;
    Ok(())
}

/// A connection's place in the registry and in the accepted count, given
/// back when its task ends.
struct Ticket {
    connections: Connections,
    id: ConnId,
    _accepted: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.connections).release(self.id);
    }
}

/// One accepted connection, until it ends.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    /// Asked to close (its slot goes to a waiter).
    close: Arc<Notify>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, slots: Arc<Semaphore>, router: Router, limits: ServerLimits) {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match self.wait_for_slot(slots, limits.request_header_timeout).await {
                Some(slot) => slot,
                None => return,
            },
        };
        lock(&self.ticket.connections).served(self.ticket.id, Instant::now().into_std());
        let Connection { stream, peer, ticket, close, mut stopping } = self;
        // Small responses go out at once rather than waiting for Nagle.
        let _ = stream.set_nodelay(true);

        let phase = Arc::new(Phase::new(Instant::now()));
        let io = TokioIo::new(TimedIo::new(stream, phase.clone(), limits));
        let body_timeout = limits.request_body_timeout;
        let max_requests = limits.max_requests_per_connection;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            // Called as soon as the head is parsed: from here the body
            // deadline applies, not the header one.
            let served = phase.start_request();
            let guard = IdleOnDrop(phase.clone());
            handle(router.clone(), request, peer, body_timeout, served >= max_requests, guard)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper's own header timer runs from the end of the previous
        // response; it only backs up TimedIo's two finer timers.
        builder.timer(TokioTimer::new()).header_read_timeout(limits.keep_alive_timeout + limits.request_header_timeout);
        let connection = builder.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            () = close.notified() => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
            () = stopped(&mut stopping) => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
        drop(slot);
        drop(ticket);
    }

    /// Every slot is taken: have one freed for this connection (see
    /// [`crate::connections`]) and wait for it, at most `within`. `None`:
    /// none came in time, or the server is stopping.
    async fn wait_for_slot(&mut self, slots: Arc<Semaphore>, within: Duration) -> Option<OwnedSemaphorePermit> {
        let give_up = Instant::now() + within;
        let acquire = slots.acquire_owned();
        let mut acquire = std::pin::pin!(acquire);
        loop {
            let now = Instant::now();
            let ask_again = match lock(&self.ticket.connections).make_room(self.ticket.id, now.into_std()) {
                Room::Close(connection) => {
                    connection.notify_one();
                    // Its request may take a while; if the slot went to an
                    // earlier waiter, ask for another turn later.
                    now + crate::connections::MIN_TURN
                }
                Room::RetryAt(at) => Instant::from_std(at),
                Room::None => give_up,
            };
            tokio::select! {
                slot = acquire.as_mut() => return slot.ok(),
                () = tokio::time::sleep_until(ask_again.min(give_up)) => {
                    if Instant::now() >= give_up {
                        tracing::debug!(peer = %self.peer, "closed a connection that waited too long for a slot");
                        return None;
                    }
                }
                () = stopped(&mut self.stopping) => return None,
            }
        }
    }
}

/// Until the server is stopping.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stopping as well.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Raise the soft limit on open files to what `accepted` connections need
/// (up to the hard limit); warn, naming the key, when it stays too low.
fn fit_open_files(limits: &ServerLimits, accepted: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = u64::try_from(accepted).unwrap_or(u64::MAX).saturating_add(OTHER_DESCRIPTORS);
    let mut open_files = getrlimit(Resource::Nofile);
    let Some(soft) = open_files.current else { return };
    if soft >= needed {
        return;
    }
    let target = open_files.maximum.map_or(needed, |hard| hard.min(needed));
    if target > soft {
        open_files.current = Some(target);
        if setrlimit(Resource::Nofile, open_files).is_ok() {
            tracing::info!(from = soft, to = target, "raised the open-file limit for server.max_connections");
            if target >= needed {
                return;
            }
        }
    }
    tracing::warn!(
        max_connections = limits.max_connections,
        needed,
        limit = target.max(soft),
        "server.max_connections needs more open files than this process may have: raise the limit \
         (ulimit -n, systemd LimitNOFILE=) or lower server.max_connections"
    );
}

/// One request through the router, with the body deadline and the peer
/// address; the response body marks the connection idle once written.
async fn handle(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Duration,
    last_on_connection: bool,
    idle_on_drop: IdleOnDrop,
) -> Result<Response, Infallible> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let mut request = if request.body().is_end_stream() {
        request.map(axum::body::Body::new)
    } else {
        let deadline = Instant::now() + body_timeout;
        request.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline, timed_out.clone())))
    };
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // The handler saw its body fail; whatever it answered, the truth is 408.
    let mut response = if timed_out.load(Ordering::SeqCst) { request_timeout(body_timeout) } else { response };
    if last_on_connection {
        // server.max_requests_per_connection: hyper closes after this one.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response.map(|body| {
        axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
            let _ = &idle_on_drop;
            frame
        }))
    }))
}

/// 408 with `Connection: close` (RFC 9110 15.5.9).
fn request_timeout(after: Duration) -> Response {
    let mut response =
        (StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {} seconds\n", after.as_secs()))
            .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where a connection is between requests, which decides its read deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Opened at this instant, no byte yet: the first-byte timeout runs.
    New(Instant),
    /// No request in progress since this instant: the keep-alive timeout runs.
    Idle(Instant),
    /// The first byte of a request head arrived at this instant: the header
    /// timeout runs.
    Head(Instant),
    /// A request is being handled (its body has its own deadline).
    Busy,
}

/// The phase of one connection, shared by its socket wrapper and its
/// requests.
#[derive(Debug)]
struct Phase(Mutex<(State, usize)>);

impl Phase {
    fn new(now: Instant) -> Phase {
        Phase(Mutex::new((State::New(now), 0)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut (State, usize)) -> T) -> T {
        match self.0.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn bytes_arrived(&self, now: Instant) {
        self.with(|(s, _)| {
            if let State::New(_) | State::Idle(_) = s {
                *s = State::Head(now);
            }
        });
    }

    /// A request's head was read; how many this connection has had.
    fn start_request(&self) -> usize {
        self.with(|(s, served)| {
            *s = State::Busy;
            *served += 1;
            *served
        })
    }

    fn finish_request(&self, now: Instant) {
        self.with(|(s, _)| *s = State::Idle(now));
    }

    /// When a read that is still waiting must give up.
    fn read_deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        self.with(|(s, _)| match *s {
            State::New(since) => Some(since + limits.first_byte_timeout.min(limits.keep_alive_timeout)),
            State::Idle(since) => Some(since + limits.keep_alive_timeout),
            State::Head(since) => Some(since + limits.request_header_timeout),
            State::Busy => None,
        })
    }
}

/// Marks the connection idle when the response body is dropped (written
/// completely, or abandoned).
struct IdleOnDrop(Arc<Phase>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.finish_request(Instant::now());
    }
}

/// The socket, failing a waiting read with `TimedOut` once the phase's
/// deadline has passed (hyper then closes the connection).
struct TimedIo<T> {
    inner: T,
    phase: Arc<Phase>,
    limits: ServerLimits,
    sleep: Pin<Box<Sleep>>,
}

impl<T> TimedIo<T> {
    fn new(inner: T, phase: Arc<Phase>, limits: ServerLimits) -> Self {
        let first = phase.read_deadline(&limits).unwrap_or_else(Instant::now);
        TimedIo { inner, phase, limits, sleep: Box::pin(tokio::time::sleep_until(first)) }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.phase.bytes_arrived(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = self.phase.read_deadline(&self.limits) else { return Poll::Pending };
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle or request head too slow",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] at `deadline`, however
/// steadily it drips, and records that it did.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: Instant, timed_out: Arc<AtomicBool>) -> Self {
        DeadlineBody { inner, sleep: Box::pin(tokio::time::sleep_until(deadline)), timed_out }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            request_header_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            first_byte_timeout: Duration::from_secs(5),
            max_connections: 4,
            max_connections_per_address: 2,
            max_requests_per_connection: 3,
        }
    }

    #[test]
    fn the_read_deadline_follows_the_phase() {
        let t0 = Instant::now();
        let phase = Phase::new(t0);
        assert_eq!(phase.read_deadline(&limits()), Some(t0 + Duration::from_secs(5)), "the first byte is timed");
        let first_byte = t0 + Duration::from_secs(4);
        phase.bytes_arrived(first_byte);
        assert_eq!(phase.read_deadline(&limits()), Some(first_byte + Duration::from_secs(10)), "the head is timed");
        phase.bytes_arrived(first_byte + Duration::from_secs(4));
        assert_eq!(
            phase.read_deadline(&limits()),
            Some(first_byte + Duration::from_secs(10)),
            "dripping bytes does not extend the head's deadline"
        );
        assert_eq!(phase.start_request(), 1, "the first request");
        assert_eq!(phase.read_deadline(&limits()), None, "the body has its own deadline");
        phase.bytes_arrived(first_byte + Duration::from_secs(8));
        assert_eq!(phase.read_deadline(&limits()), None, "body bytes do not start a head");
        let done = t0 + Duration::from_secs(20);
        phase.finish_request(done);
        assert_eq!(phase.read_deadline(&limits()), Some(done + Duration::from_secs(60)), "kept alive, idle again");
    }
}
