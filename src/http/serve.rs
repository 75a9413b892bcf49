//! Serving connections: tenure's own accept loop over hyper's HTTP/1
//! connection, with the limits `axum::serve` does not have (operations doc,
//! "Connection limits and timeouts").
//!
//! - **Connection cap**: at most `max_connections` connections are served at
//!   once; the accept loop waits for a free slot, so excess connections wait
//!   in the kernel's listen backlog (never an unbounded number of tasks).
//! - **Keep-alive timeout**: a connection with no request in progress (just
//!   opened, or after a response) is closed when no byte of a new request
//!   arrives within `keep_alive_timeout`.
//! - **Request header timeout**: once the first byte of a request has
//!   arrived, its whole head (request line and headers) must follow within
//!   `request_header_timeout`, however slowly it drips.
//! - **Request body timeout**: the whole body must arrive within
//!   `request_body_timeout` of the head; otherwise the answer is
//!   `408 Request Timeout` and the connection is closed.
//!
//! The first two are enforced by [`TimedIo`], a wrapper around the socket
//! that knows the connection's [`Phase`]; the body timeout by [`DeadlineBody`]
//! around each request body. Graceful shutdown stops accepting, lets
//! requests in flight finish and closes idle connections; the peer address
//! reaches handlers as `ConnectInfo<SocketAddr>`, as with `axum::serve`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ServerLimits;

/// After a failed `accept` (out of file descriptors, ...), wait this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve `router` on `listener` until `shutdown` completes, then stop
/// accepting and wait for the open connections to finish (requests in
/// flight complete; idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
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
        // Small responses go out at once rather than waiting for Nagle.
        let _ = stream.set_nodelay(true);

        let phase = Arc::new(Phase::new(Instant::now()));
        let io = TokioIo::new(TimedIo::new(stream, phase.clone(), limits));
        let router = router.clone();
        let body_timeout = limits.request_body_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            // Called as soon as the head is parsed: from here the body
            // deadline applies, not the header one.
            phase.start_request();
            let guard = IdleOnDrop(phase.clone());
            handle(router.clone(), request, peer, body_timeout, guard)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper's own header timer runs from the end of the previous
        // response; it only backs up TimedIo's two finer timers.
        builder.timer(TokioTimer::new()).header_read_timeout(limits.keep_alive_timeout + limits.request_header_timeout);
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One request through the router, with the body deadline and the peer
/// address; the response body marks the connection idle once written.
async fn handle(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Duration,
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
    let response = if timed_out.load(Ordering::SeqCst) { request_timeout(body_timeout) } else { response };
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
struct Phase(Mutex<State>);

impl Phase {
    fn new(now: Instant) -> Phase {
        Phase(Mutex::new(State::Idle(now)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        match self.0.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn bytes_arrived(&self, now: Instant) {
        self.with(|s| {
            if let State::Idle(_) = s {
                *s = State::Head(now);
            }
        });
    }

    fn start_request(&self) {
        self.with(|s| *s = State::Busy);
    }

    fn finish_request(&self, now: Instant) {
        self.with(|s| *s = State::Idle(now));
    }

    /// When a read that is still waiting must give up.
    fn read_deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        self.with(|s| match *s {
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
            max_connections: 4,
        }
    }

    #[test]
    fn the_read_deadline_follows_the_phase() {
        let t0 = Instant::now();
        let phase = Phase::new(t0);
        assert_eq!(phase.read_deadline(&limits()), Some(t0 + Duration::from_secs(60)), "a new connection is idle");
        let first_byte = t0 + Duration::from_secs(5);
        phase.bytes_arrived(first_byte);
        assert_eq!(phase.read_deadline(&limits()), Some(first_byte + Duration::from_secs(10)), "the head is timed");
        phase.bytes_arrived(first_byte + Duration::from_secs(4));
        assert_eq!(
            phase.read_deadline(&limits()),
            Some(first_byte + Duration::from_secs(10)),
            "dripping bytes does not extend the head's deadline"
        );
        phase.start_request();
        assert_eq!(phase.read_deadline(&limits()), None, "the body has its own deadline");
        phase.bytes_arrived(first_byte + Duration::from_secs(8));
        assert_eq!(phase.read_deadline(&limits()), None, "body bytes do not start a head");
        let done = t0 + Duration::from_secs(20);
        phase.finish_request(done);
        assert_eq!(phase.read_deadline(&limits()), Some(done + Duration::from_secs(60)), "kept alive, idle again");
    }
}
