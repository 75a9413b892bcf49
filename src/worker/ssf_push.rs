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
//! Where a push may go (SECURITY.md "Authority and cost"): only to public
//! addresses and to the non-public ranges the operator lists in
//! `feed.allowed_private_networks` ([`OutboundTargets`]). The endpoint is
//! checked when the stream is configured ([`check_endpoint`]) and again at
//! every connection: the client resolves names itself ([`VettingResolver`])
//! and connects only to vetted addresses, so a name that later resolves to
//! a loopback, private or metadata address (DNS rebinding) is refused; an
//! address written in the URL is checked before the request. No redirect
//! is followed and no proxy from the environment is used.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::clock::UnixTime;
use crate::net::{OutboundTargets, RefusedTarget};
use crate::service::AppState;
use crate::ssf::{Delivery, QueuedSet, SignedSet, Stream, StreamStatus};
use crate::store::Store;
use crate::token::SigningAlg;
use crate::token::jwt::{self, TokenType};

/// How often the queue is checked for due SETs.
pub const TICK: Duration = Duration::from_secs(1);
/// At most this many SETs are read per stream and tick.
pub const BATCH: usize = 100;
/// A receiver that has not answered within this time has failed the attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a push endpoint's name may take to resolve when a stream is
/// configured.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// A push endpoint whose address is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetRefused(pub String);

fn refused_name(host: &str, r: &RefusedTarget) -> TargetRefused {
    TargetRefused(format!("{host} resolves to {}, {} ({})", r.ip, r.what, r.range))
}

/// The addresses `host` resolved to, when every one of them is allowed.
/// A name with one forbidden address among public ones is refused whole
/// (the connection could go to any of them).
pub fn vet_addresses(
    targets: &OutboundTargets,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, TargetRefused> {
    if addrs.is_empty() {
        return Err(TargetRefused(format!("{host} resolves to no address")));
    }
    for a in &addrs {
        targets.check(a.ip()).map_err(|r| refused_name(host, &r))?;
    }
    Ok(addrs)
}

/// The IP address written in `url` as its host, if it is one (reqwest
/// connects to it without asking the resolver).
fn literal_host(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Check push endpoint `endpoint_url` when a stream is configured: an
/// address in the URL against `targets`, a name by resolving it now. A
/// name that does not resolve (yet) passes: every connection is checked
/// again ([`VettingResolver`]).
pub async fn check_endpoint(targets: &OutboundTargets, endpoint_url: &str) -> Result<(), TargetRefused> {
    let Ok(url) = url::Url::parse(endpoint_url) else { return Ok(()) };
    if let Some(ip) = literal_host(&url) {
        return targets.check(ip).map_err(|r| TargetRefused(r.to_string()));
    }
    let Some(host) = url.host_str() else { return Ok(()) };
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => vet_addresses(targets, host, addrs.collect()).map(|_| ()),
        Ok(Err(_)) | Err(_) => Ok(()),
    }
}

/// The push client's resolver: resolves with the system resolver, then
/// hands reqwest only vetted addresses ([`vet_addresses`]), so the address
/// checked is the address connected to.
pub struct VettingResolver {
    targets: OutboundTargets,
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

/// The events `queued` of `stream`, each with its signed SET (RS256, CAEP
/// interoperability profile; `typ: secevent+jwt`), signed once: a SET
/// signed before by a key still published is handed out again as it is.
/// The others are signed on the blocking pool, never on the request
/// executor, one batch at a time across the process (so concurrent polls
/// cannot take every core, and the second of two polls of the same events
/// finds them signed), and kept in the queue for the next poll or push.
pub async fn signed_sets(
    state: &AppState,
    stream: &Stream,
    mut queued: Vec<(u64, QueuedSet)>,
    now: UnixTime,
) -> Result<Vec<(u64, SignedSet)>, String> {
    let keys = state.keys();
    let retain = state.key_retention();
    let usable = |set: &QueuedSet| set.signed.as_ref().is_some_and(|s| keys.is_published(&s.kid, now, retain));
    if !queued.iter().all(|(_, set)| usable(set)) {
        let _permit = state.feed.signing.acquire().await.map_err(|e| e.to_string())?;
        // Another poll may have signed them while this one waited.
        let stored = state.store.queued_sets(&stream.client_id, queued.len()).await.map_err(|e| e.to_string())?;
        let stored: std::collections::HashMap<u64, QueuedSet> = stored.into_iter().collect();
        for (id, set) in &mut queued {
            if !usable(set)
                && let Some(signed) = stored.get(id).and_then(|s| s.signed.clone())
            {
                set.signed = Some(signed);
            }
        }
        let unsigned: Vec<(u64, QueuedSet)> = queued.iter().filter(|(_, s)| !usable(s)).cloned().collect();
        if !unsigned.is_empty() {
            let (signer, issuer, owned) = (keys.clone(), state.issuer.clone(), stream.clone());
            let fresh = tokio::task::spawn_blocking(move || {
                let key = signer.id_token_key(Some(SigningAlg::RS256), now);
                unsigned
                    .into_iter()
                    .map(|(id, set)| {
                        let token = jwt::sign(key, TokenType::SecEvent, &set.claims(&issuer, &owned))?;
                        Ok((id, SignedSet { kid: key.kid.clone(), token }))
                    })
                    .collect::<Result<Vec<_>, crate::token::keys::KeyError>>()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if let Err(e) = state.store.keep_signed_sets(&stream.client_id, &fresh).await {
                tracing::warn!(error = %e, client_id = %stream.client_id, "keeping signed SETs failed; they will be signed again");
            }
            let fresh: std::collections::HashMap<u64, SignedSet> = fresh.into_iter().collect();
            for (id, set) in &mut queued {
                if let Some(signed) = fresh.get(id) {
                    set.signed = Some(signed.clone());
                }
            }
        }
    }
    queued
        .into_iter()
        .map(|(id, set)| set.signed.map(|s| (id, s)).ok_or_else(|| format!("SET {} was not signed", set.jti)))
        .collect()
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

/// POST the SETs of `stream` due at `now`, in order, until one fails.
/// Returns how many were delivered.
pub async fn deliver_due(state: &AppState, http: &reqwest::Client, stream: &Stream, now: UnixTime) -> usize {
    let Delivery::Push { endpoint_url, authorization_header } = &stream.delivery else { return 0 };
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

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn a_name_is_refused_when_any_of_its_addresses_is_not_allowed() {
        let strict = OutboundTargets::default();
        assert_eq!(
            vet_addresses(&strict, "rs.example", vec![addr("93.184.215.14:443")]),
            Ok(vec![addr("93.184.215.14:443")])
        );
        let rebound = vet_addresses(&strict, "rs.example", vec![addr("93.184.215.14:443"), addr("127.0.0.1:443")])
            .expect_err("one loopback address among public ones");
        assert_eq!(rebound.0, "rs.example resolves to 127.0.0.1, a loopback address (127.0.0.0/8)");
        assert!(vet_addresses(&strict, "md.example", vec![addr("[::ffff:169.254.169.254]:80")]).is_err());
        assert!(vet_addresses(&strict, "none.example", vec![]).is_err());
        let lab = OutboundTargets::allowing(vec!["127.0.0.0/8".parse().expect("net")]);
        assert!(vet_addresses(&lab, "localhost", vec![addr("127.0.0.1:0")]).is_ok());
    }

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

    #[tokio::test]
    async fn endpoints_are_checked_when_a_stream_is_configured() {
        let strict = OutboundTargets::default();
        for url in [
            "http://127.0.0.1:8080/x",
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/x",
            "https://[fd00::1]/x",
            "https://100.64.0.1/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://2130706433/x",
            "http://localhost:8080/x",
        ] {
            assert!(check_endpoint(&strict, url).await.is_err(), "{url}");
        }
        assert_eq!(check_endpoint(&strict, "https://93.184.215.14/x").await, Ok(()));
        assert_eq!(check_endpoint(&strict, "https://does-not-resolve.invalid/x").await, Ok(()), "checked at connect");
    }
}
