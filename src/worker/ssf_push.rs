//! Push delivery of the revocation feed (RFC 8935): the worker that empties
//! the durable SET queue of every enabled push stream.
//!
//! Every [`TICK`] it starts one task per enabled push stream that has no
//! task under way; the task POSTs the stream's due SETs in queue order
//! (`Content-Type: application/secevent+jwt`, the receiver's
//! `authorization_header` when it gave one). 202 (or any 2xx) is success
//! and removes the SET; 400 is the receiver refusing that SET (RFC 8935
//! 2.3: it would refuse it again), which is logged with its `err` code and
//! dropped; anything else, a timeout or a connection error
//! keeps it queued for another attempt after [`crate::ssf::backoff`] (5 s after
//! the first failure, then doubling), and the stream's later SETs wait
//! behind it so order is kept. The queue is in the store, so what is not
//! delivered survives a restart; SETs older than the longest access-token
//! lifetime are dropped by the sweeper. Delivery is at least once: a crash
//! between the POST and the bookkeeping repeats the same SET (same `jti`).
//!
//! Several replicas (SPEC 12): each stream is pushed by one replica at a
//! time, the holder of the lease `ssf-push:<client id>` (the store's
//! leases, as the sweeper's), taken before the queue is read and renewed
//! before every POST, for [`PUSH_LEASE`]. Another replica skips the stream
//! while the lease is held, so each SET is sent once; if the holder dies,
//! its lease runs out and the next replica to tick takes the stream over,
//! from the first SET not yet recorded as pushed.
//!
//! Where a push may go (SECURITY.md "Authority and cost"): only to public
//! addresses and to the non-public ranges the operator lists in
//! `feed.allowed_private_networks` ([`OutboundTargets`]). The endpoint is
//! checked when the stream is configured
//! ([`crate::service::feed::check_endpoint`]) and again at
//! every connection: the client resolves names itself ([`VettingResolver`])
//! and connects only to vetted addresses, so a name that later resolves to
//! a loopback, private or metadata address (DNS rebinding) is refused; an
//! address written in the URL is checked before the request. No redirect
//! is followed and no proxy from the environment is used.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::net::OutboundTargets;
use crate::service::AppState;
use crate::service::feed::{TargetRefused, literal_host, signed_sets, vet_addresses};
use crate::ssf::{Delivery, Stream, StreamStatus};
use crate::store::Store;
use crate::worker::replica::holds_lease;

/// How often the queue is checked for due SETs.
pub const TICK: Duration = Duration::from_secs(1);
/// At most this many SETs are read per stream and tick.
pub const BATCH: usize = 100;
/// A receiver that has not answered within this time has failed the attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stream's push lease lasts from its last renewal: well beyond
/// one attempt ([`REQUEST_TIMEOUT`] and the bookkeeping), so a live holder
/// never loses it between two renewals; the delay before another replica
/// takes over from one that died.
pub const PUSH_LEASE: Secs = Secs::new(15);

/// The name of the lease under which `client_id`'s stream is pushed.
pub fn push_lease(client_id: &str) -> String {
    format!("ssf-push:{client_id}")
}
/// The push client's resolver (and back-channel logout's, for clients of
/// the admin API): resolves with the system resolver, then
/// hands reqwest only vetted addresses ([`vet_addresses`]), so the address
/// checked is the address connected to.
pub struct VettingResolver {
    targets: OutboundTargets,
}

impl VettingResolver {
    /// A resolver that hands out only addresses `targets` allows.
    pub fn new(targets: OutboundTargets) -> Self {
        VettingResolver { targets }
    }
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.targets.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let vetted = vet_addresses(&targets, &host, addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(vetted.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of push delivery: the [`VettingResolver`], no redirects,
/// no proxy, [`REQUEST_TIMEOUT`].
pub fn push_client(targets: &OutboundTargets) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(VettingResolver { targets: targets.clone() }))
        .user_agent(concat!("tenure/", env!("CARGO_PKG_VERSION"), " (SSF push)"))
        .build()
}

/// Run the worker until the task is aborted (at shutdown).
pub async fn push_periodically(state: AppState) {
    let http = match push_client(&state.config.feed_push_targets) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for SSF push; SETs stay queued until a restart");
            return;
        }
    };
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(client_id) => { busy.remove(&client_id); }
                    Err(e) => {
                        tracing::error!(error = %e, "an SSF push task failed; its SETs stay queued");
                        busy.clear();
                    }
                }
                continue;
            }
        }
        let streams = match state.store.ssf_streams().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading the SSF streams failed");
                continue;
            }
        };
        let now = state.now();
        for stream in streams {
            let pushes = matches!(stream.delivery, Delivery::Push { .. })
                && stream.status == StreamStatus::Enabled
                && crate::ssf::receives(&state.clients, &stream.client_id);
            if pushes && busy.insert(stream.client_id.clone()) {
                let (state, http) = (state.clone(), http.clone());
                tasks.spawn(async move {
                    deliver_due(&state, &http, &stream, now).await;
                    stream.client_id
                });
            }
        }
    }
}

/// POST the SETs of `stream` due at `now`, in order, until one fails,
/// while this replica holds the stream's push lease ([`push_lease`]).
/// Returns how many were delivered.
pub async fn deliver_due(state: &AppState, http: &reqwest::Client, stream: &Stream, now: UnixTime) -> usize {
    let Delivery::Push { endpoint_url, authorization_header } = &stream.delivery else { return 0 };
    let lease = push_lease(&stream.client_id);
    if !holds_lease(state, &lease, state.now(), PUSH_LEASE).await {
        return 0;
    }
    let queued = match state.store.queued_sets(&stream.client_id, BATCH).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, client_id = %stream.client_id, "reading the SSF queue failed");
            return 0;
        }
    };
    let mut delivered = 0;
    for (id, set) in queued {
        if set.next_attempt_at > now {
            break;
        }
        // Renewed before each POST: a replica that lost the lease (it was
        // stalled longer than PUSH_LEASE) stops before sending.
        if !holds_lease(state, &lease, state.now(), PUSH_LEASE).await {
            break;
        }
        let outcome = match signed_sets(state, stream, vec![(id, set.clone())], now).await.as_deref() {
            Ok([(_, signed)]) => {
                let token = signed.token.clone();
                post(http, &state.config.feed_push_targets, endpoint_url, authorization_header.as_deref(), token).await
            }
            Ok(_) => Err(Failure::Retry("signing failed".to_owned())),
            Err(e) => Err(Failure::Retry(format!("signing failed: {e}"))),
        };
        let client_id = &stream.client_id;
        match outcome {
            Ok(()) | Err(Failure::Rejected(_)) => {
                match &outcome {
                    Err(Failure::Rejected(err)) => {
                        tracing::warn!(%client_id, jti = %set.jti, %err, "the receiver rejected a SET (400); dropped");
                    }
                    _ => tracing::info!(%client_id, jti = %set.jti, attempts = set.attempts + 1, "SET pushed"),
                }
                if let Err(e) = state.store.remove_sets(client_id, std::slice::from_ref(&set.jti)).await {
                    tracing::error!(error = %e, %client_id, "recording a pushed SET failed; it will be sent again");
                    break;
                }
                delivered += usize::from(outcome.is_ok());
                state.metrics.ssf("push", if outcome.is_ok() { "delivered" } else { "rejected" }, 1);
            }
            Err(Failure::Retry(error)) => {
                state.metrics.ssf("push", "failed", 1);
                let next = set.after_failure(now);
                tracing::warn!(%client_id, jti = %set.jti, attempts = next.attempts, %error,
                    "SET push failed; will retry at {}", next.next_attempt_at);
                if let Err(e) = state.store.reschedule_set(id, &next).await {
                    tracing::error!(error = %e, %client_id, "rescheduling a SET push failed");
                }
                break;
            }
        }
    }
    delivered
}

/// How an attempt ended badly.
#[derive(Debug)]
enum Failure {
    /// 400 (RFC 8935 2.3): the receiver refused this SET (`err` code); it
    /// would refuse it again, so it is not retried.
    Rejected(String),
    /// Anything else: retried.
    Retry(String),
}

/// One RFC 8935 2 request, to an allowed address only. The SET itself is
/// never logged.
async fn post(
    http: &reqwest::Client,
    targets: &OutboundTargets,
    url: &str,
    authorization: Option<&str>,
    token: String,
) -> Result<(), Failure> {
    let refused = |why: String| Failure::Retry(format!("push target refused: {why}"));
    if let Some(ip) = url::Url::parse(url).ok().as_ref().and_then(literal_host) {
        targets.check(ip).map_err(|r| refused(r.to_string()))?;
    }
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/secevent+jwt")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(token);
    if let Some(a) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, a);
    }
    let response = request.send().await.map_err(|e| {
        if let Some(r) = refusal(&e) {
            return refused(r.0.clone());
        }
        Failure::Retry(if e.is_timeout() {
            format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
        } else {
            e.to_string()
        })
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::BAD_REQUEST {
        // {"err": "...", "description": "..."}: receiver text, escaped for
        // the log; only the short code is kept.
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        return Err(Failure::Rejected(crate::ssf::ReceiverError::from_body(&body).err));
    }
    Err(Failure::Retry(format!("the receiver answered HTTP {}", status.as_u16())))
}

/// The [`TargetRefused`] behind a failed request, if that was the cause.
fn refusal(e: &reqwest::Error) -> Option<&TargetRefused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<TargetRefused>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_refuses_a_name_of_a_loopback_address_at_connect_time() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().expect("name");
        let strict = VettingResolver { targets: OutboundTargets::default() };
        let err = strict.resolve(name("localhost")).await.err().expect("localhost is loopback");
        assert!(err.to_string().starts_with("localhost resolves to 127.0.0.1, a loopback address"), "{err}");
        let lab = VettingResolver {
            targets: OutboundTargets::allowing(vec!["127.0.0.0/8".parse().expect("net"), "::1".parse().expect("net")]),
        };
        let addrs: Vec<SocketAddr> = lab.resolve(name("localhost")).await.expect("allowed").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());

        // And through the client: nothing is sent.
        let http = push_client(&OutboundTargets::default()).expect("client");
        let e = http.post("http://localhost:9/events").send().await.expect_err("refused");
        assert!(refusal(&e).is_some(), "{e:?}");
    }
}
