//! The revocation feed's use cases (SPEC 13): a receiving client's stream
//! configuration (read, create, change, delete), its status and
//! verification, RFC 8936 poll delivery with acknowledgements, and what
//! both deliveries share: where a push may go and the signed SETs.
//! `http/ssf.rs` extracts and maps; `worker/ssf_push.rs` pushes.
//!
//! Every use case takes the caller's access token claims: a
//! client-credentials token of the receiving client holding `ssf.manage`
//! (to change a stream) or `ssf.read` (or `ssf.manage`, to read and poll),
//! a scope its client must still be allowed. A user's token is refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::net::{OutboundTargets, RefusedTarget};
use crate::service::{AppState, ServiceError};
use crate::ssf::{self, Delivery, QueuedSet, SetEvent, SetSubject, SignedSet, Stream, StreamStatus};
use crate::store::Store;
use crate::token::SigningAlg;
use crate::token::claims::AccessClaims;
use crate::token::jwt::{self, TokenType};

/// At most this many SETs per poll response.
pub const MAX_EVENTS: usize = 1000;
/// `maxEvents` when the receiver does not say.
pub const DEFAULT_MAX_EVENTS: usize = 100;
/// A poll without `returnImmediately` waits at most this long for an event.
pub const LONG_POLL_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting poll looks at the queue.
const LONG_POLL_STEP: Duration = Duration::from_millis(200);

fn internal(context: &'static str, e: impl std::fmt::Display + 'static) -> ServiceError {
    ServiceError::internal(context, e)
}

/// The receiving client of `caller`, once it holds one of `scopes` (in the
/// token and still in its client's `scopes`).
fn receiver(state: &AppState, caller: &AccessClaims, scopes: &[&str]) -> Result<String, ServiceError> {
    if caller.sid.is_some() {
        return Err(ServiceError::Forbidden(
            "the revocation feed takes a client-credentials token of the receiving client, not a user's token"
                .to_owned(),
        ));
    }
    let client_id = &caller.client_id;
    let client = state.clients.get(client_id);
    let granted =
        |s: &&str| caller.scope.split(' ').any(|t| t == *s) && client.as_ref().is_some_and(|c| c.scopes.contains(s));
    if scopes.iter().any(granted) {
        Ok(client_id.clone())
    } else {
        Err(ServiceError::InsufficientScope(format!(
            "this needs a token with scope {} of a client allowed it",
            scopes.join(" or ")
        )))
    }
}

fn stream_id_of(body: &Map<String, Value>) -> Result<String, ServiceError> {
    match body.get("stream_id") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ServiceError::invalid("stream_id: must be a string")),
        None => Err(ServiceError::invalid("stream_id: is required")),
    }
}

/// The stream of `client_id`, if it has one.
async fn stream_of(state: &AppState, client_id: &str) -> Result<Option<Stream>, ServiceError> {
    state.store.ssf_stream(client_id).await.map_err(|e| internal("reading an SSF stream", e))
}

async fn put_stream(state: &AppState, stream: &Stream) -> Result<(), ServiceError> {
    state.store.put_ssf_stream(stream).await.map_err(|e| internal("storing an SSF stream", e))
}

/// The caller's stream, checked against the `stream_id` it named (if any).
async fn own_stream(state: &AppState, client_id: &str, stream_id: Option<&str>) -> Result<Stream, ServiceError> {
    match (stream_of(state, client_id).await?, stream_id) {
        (None, _) => Err(ServiceError::not_found(format!(
            "client {client_id:?} has no event stream; create one with POST /ssf/stream"
        ))),
        (Some(s), Some(id)) if s.stream_id != id => {
            Err(ServiceError::not_found(format!("client {client_id:?} has no event stream {id:?}")))
        }
        (Some(s), _) => Ok(s),
    }
}

/// The caller's stream named `stream_id`.
pub async fn stream(state: &AppState, caller: &AccessClaims, stream_id: &str) -> Result<Stream, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    own_stream(state, &client_id, Some(stream_id)).await
}

/// The caller's streams (none or one).
pub async fn streams(state: &AppState, caller: &AccessClaims) -> Result<Vec<Stream>, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    Ok(stream_of(state, &client_id).await?.into_iter().collect())
}

/// Create the caller's stream from `body` (the receiver-supplied
/// properties); a conflict when it has one.
pub async fn create_stream(
    state: &AppState,
    caller: &AccessClaims,
    body: &Map<String, Value>,
    now: UnixTime,
) -> Result<Stream, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_MANAGE])?;
    if let Some(existing) = stream_of(state, &client_id).await? {
        return Err(ServiceError::Conflict(format!(
            "client {client_id:?} already has event stream {:?} (one per receiving client); change it with PATCH or PUT",
            existing.stream_id
        )));
    }
    let stream = Stream::create(&client_id, body, &state.issuer, now).map_err(ServiceError::invalid)?;
    check_push_target(state, &stream.delivery).await?;
    put_stream(state, &stream).await?;
    tracing::info!(%client_id, stream_id = %stream.stream_id, "SSF stream created");
    Ok(stream)
}

/// How [`update_stream`] treats the properties the body does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// PATCH: they stay.
    Patch,
    /// PUT: they take their defaults.
    Replace,
}

/// Change the caller's stream named in `body` by the properties there.
pub async fn update_stream(
    state: &AppState,
    caller: &AccessClaims,
    body: &Map<String, Value>,
    update: Update,
) -> Result<Stream, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_MANAGE])?;
    let stream = own_stream(state, &client_id, Some(&stream_id_of(body)?)).await?;
    let next = match update {
        Update::Replace => stream.replace(body, &state.issuer),
        Update::Patch => stream.patch(body, &state.issuer),
    }
    .map_err(ServiceError::invalid)?;
    if next.delivery != stream.delivery {
        check_push_target(state, &next.delivery).await?;
    }
    put_stream(state, &next).await?;
    Ok(next)
}

/// A push endpoint must be a public address, or in one of the operator's
/// `feed.allowed_private_networks` (checked again at every connection).
async fn check_push_target(state: &AppState, delivery: &Delivery) -> Result<(), ServiceError> {
    let Delivery::Push { endpoint_url, .. } = delivery else { return Ok(()) };
    check_endpoint(&state.config.feed_push_targets, endpoint_url).await.map_err(|refused| {
        ServiceError::invalid(format!(
            "delivery.endpoint_url: {refused}; push delivery reaches only public addresses, \
             unless the operator allows the network in feed.allowed_private_networks"
        ))
    })
}

/// Delete the caller's stream `stream_id` (required) and its queued events.
pub async fn delete_stream(
    state: &AppState,
    caller: &AccessClaims,
    stream_id: Option<&str>,
) -> Result<(), ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_MANAGE])?;
    let id = stream_id.ok_or_else(|| ServiceError::invalid("stream_id: is required"))?;
    own_stream(state, &client_id, Some(id)).await?;
    state.store.delete_ssf_stream(&client_id).await.map_err(|e| internal("deleting an SSF stream", e))?;
    tracing::info!(%client_id, stream_id = %id, "SSF stream deleted");
    Ok(())
}

/// The caller's stream (checked against `stream_id` if given), for its status.
pub async fn status(state: &AppState, caller: &AccessClaims, stream_id: Option<&str>) -> Result<Stream, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    own_stream(state, &client_id, stream_id).await
}

/// `{stream_id, status, reason?}`: enable, pause (events are held) or
/// disable (queued events are dropped, none queued) the caller's stream.
pub async fn set_status(
    state: &AppState,
    caller: &AccessClaims,
    body: &Map<String, Value>,
) -> Result<Stream, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_MANAGE])?;
    let mut stream = own_stream(state, &client_id, Some(&stream_id_of(body)?)).await?;
    for field in body.keys() {
        if !["stream_id", "status", "reason"].contains(&field.as_str()) {
            return Err(ServiceError::invalid(format!(
                "unknown field {field:?}; known fields: stream_id, status, reason"
            )));
        }
    }
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .and_then(StreamStatus::parse)
        .ok_or_else(|| ServiceError::invalid("status: is required, one of enabled, paused, disabled"))?;
    stream.status_reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= 1000 => Some(r.clone()),
        Some(_) => return Err(ServiceError::invalid("reason: must be a string of at most 1000 characters")),
    };
    stream.status = status;
    put_stream(state, &stream).await?;
    if status == StreamStatus::Disabled {
        state.store.clear_sets(&client_id).await.map_err(|e| internal("clearing an SSF queue", e))?;
    }
    tracing::info!(%client_id, status = status.as_str(), "SSF stream status changed");
    Ok(stream)
}

/// `{stream_id, state?}`: queue a verification event (SSF 1.0 8.1.4) on
/// the caller's stream, at most one per stream every
/// [`ssf::MIN_VERIFICATION_INTERVAL`].
pub async fn verify(
    state: &AppState,
    caller: &AccessClaims,
    body: &Map<String, Value>,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_MANAGE])?;
    let stream = own_stream(state, &client_id, Some(&stream_id_of(body)?)).await?;
    for field in body.keys() {
        if !["stream_id", "state"].contains(&field.as_str()) {
            return Err(ServiceError::invalid(format!("unknown field {field:?}; known fields: stream_id, state")));
        }
    }
    let verification_state = match body.get("state") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 1000 => Some(s.clone()),
        Some(_) => return Err(ServiceError::invalid("state: must be a string of at most 1000 characters")),
    };
    if !stream.queues(ssf::VERIFICATION) {
        return Err(ServiceError::Conflict(format!(
            "event stream {:?} is disabled; enable it first",
            stream.stream_id
        )));
    }
    if let Err(wait) = state.feed.admit_verification(&client_id, now) {
        return Err(ServiceError::TooManyRequests {
            message: format!(
                "at most one verification request per stream every {} s (min_verification_interval); \
                 retry in {} s",
                ssf::MIN_VERIFICATION_INTERVAL.as_secs(),
                wait.as_secs()
            ),
            retry_after_secs: wait.as_secs(),
        });
    }
    let set = QueuedSet::new(
        &client_id,
        SetSubject::Stream { stream_id: stream.stream_id.clone() },
        SetEvent::Verification { state: verification_state },
        now,
    );
    state.store.enqueue_sets(std::slice::from_ref(&set)).await.map_err(|e| internal("queueing a SET", e))?;
    Ok(())
}

/// RFC 8936 2.4 poll request.
#[derive(Debug, Default)]
pub struct PollRequest {
    max_events: Option<usize>,
    return_immediately: Option<bool>,
    ack: Vec<String>,
    set_errs: Map<String, Value>,
}

impl PollRequest {
    /// Every member checked, the message naming it.
    pub fn parse(body: &Map<String, Value>) -> Result<PollRequest, ServiceError> {
        let mut request = PollRequest::default();
        for (field, value) in body {
            match field.as_str() {
                "maxEvents" => {
                    let n = value.as_u64().ok_or_else(|| {
                        ServiceError::invalid(format!("maxEvents: must be a whole number from 0, not {value}"))
                    })?;
                    request.max_events = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
                "returnImmediately" => {
                    request.return_immediately = Some(value.as_bool().ok_or_else(|| {
                        ServiceError::invalid(format!("returnImmediately: must be true or false, not {value}"))
                    })?);
                }
                "ack" => {
                    request.ack = serde_json::from_value(value.clone())
                        .map_err(|_| ServiceError::invalid("ack: must be a list of jti strings"))?;
                }
                "setErrs" => {
                    request.set_errs = value.as_object().cloned().ok_or_else(|| {
                        ServiceError::invalid("setErrs: must be an object of jti -> {err, description}")
                    })?;
                }
                other => {
                    return Err(ServiceError::invalid(format!(
                        "unknown member {other:?}; known members: ack, setErrs, maxEvents, returnImmediately"
                    )));
                }
            }
        }
        Ok(request)
    }
}

/// What a poll hands the receiver.
#[derive(Debug)]
pub struct Polled {
    /// `jti` -> signed SET, in queue order.
    pub sets: Vec<(String, String)>,
    /// More are queued than this response carries.
    pub more_available: bool,
}

/// RFC 8936: acknowledge (and log the receiver's SET errors), then receive
/// pending SETs, waiting up to [`LONG_POLL_WAIT`] for one unless
/// `returnImmediately`. It reads the clock itself: the SETs are signed at
/// the time the wait ended.
pub async fn poll(state: &AppState, caller: &AccessClaims, request: PollRequest) -> Result<Polled, ServiceError> {
    let client_id = receiver(state, caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    let stream = own_stream(state, &client_id, None).await?;
    if !matches!(stream.delivery, Delivery::Poll) {
        return Err(ServiceError::Conflict(format!(
            "event stream {:?} delivers by push; change its delivery to poll first",
            stream.stream_id
        )));
    }
    if request.ack.len() + request.set_errs.len() > MAX_EVENTS * 10 {
        return Err(ServiceError::invalid(format!("at most {} acknowledgements per request", MAX_EVENTS * 10)));
    }
    let mut errs = Vec::with_capacity(request.set_errs.len());
    for (jti, report) in request.set_errs {
        // Receiver text: escaped, so it can never forge a log line.
        let ssf::ReceiverError { err, description } = ssf::ReceiverError::from_body(&report);
        let shown = ssf::loggable(&jti, 64);
        tracing::warn!(%client_id, jti = %shown, %err, %description, "a receiver reported a SET error");
        errs.push(jti);
    }
    // Unknown jtis (already acknowledged, or dropped) are not counted.
    for (jtis, outcome) in [(&request.ack, "delivered"), (&errs, "rejected")] {
        let removed = state.store.remove_sets(&client_id, jtis).await.map_err(|e| internal("acknowledging SETs", e))?;
        state.metrics.ssf("poll", outcome, removed);
    }

    let max = request.max_events.unwrap_or(DEFAULT_MAX_EVENTS).min(MAX_EVENTS);
    let deliver = stream.status == StreamStatus::Enabled && max > 0;
    let wait = !request.return_immediately.unwrap_or(false);
    let deadline = tokio::time::Instant::now() + LONG_POLL_WAIT;
    let mut queued = Vec::new();
    if deliver {
        loop {
            queued =
                state.store.queued_sets(&client_id, max + 1).await.map_err(|e| internal("reading the SSF queue", e))?;
            if !queued.is_empty() || !wait || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(LONG_POLL_STEP).await;
        }
    }
    let more_available = queued.len() > max;
    queued.truncate(max);
    let jtis: Vec<String> = queued.iter().map(|(_, set)| set.jti.clone()).collect();
    let signed = signed_sets(state, &stream, queued, state.now()).await.map_err(|e| internal("signing SETs", e))?;
    let sets = jtis.into_iter().zip(signed).map(|(jti, (_, signed))| (jti, signed.token)).collect();
    Ok(Polled { sets, more_available })
}

// ---- what push and poll share ------------------------------------------

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
pub fn literal_host(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Check push endpoint `endpoint_url` when a stream is configured: an
/// address in the URL against `targets`, a name by resolving it now. A
/// name that does not resolve (yet) passes: every connection is checked
/// again (`worker::ssf_push::VettingResolver`).
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
