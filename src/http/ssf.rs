//! The revocation feed's HTTP surface (SPEC 13): SSF 1.0 transmitter
//! metadata, the stream configuration, status and verification endpoints,
//! and RFC 8936 poll delivery.
//!
//! Every endpoint but the metadata takes a client-credentials token of the
//! receiving client: `ssf.manage` to change a stream (configuration, status,
//! verification), `ssf.read` (or `ssf.manage`) to read them and to poll. The
//! client must still be allowed the scope in its `scopes`. A user's token is
//! refused: receivers are services.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Caller, JSON_BODY_LIMIT, parse_json};
use crate::service::{AppState, ServiceError};
use crate::ssf::{self, QueuedSet, SetEvent, SetSubject, Stream, StreamStatus};
use crate::store::Store;

/// At most this many SETs per poll response.
pub const MAX_EVENTS: usize = 1000;
/// `maxEvents` when the receiver does not say.
pub const DEFAULT_MAX_EVENTS: usize = 100;
/// A poll without `returnImmediately` waits at most this long for an event.
pub const LONG_POLL_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting poll looks at the queue.
const LONG_POLL_STEP: Duration = Duration::from_millis(200);

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn internal(context: &'static str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(context, e)
}

/// `GET /.well-known/ssf-configuration` (SSF 1.0 7.1).
pub async fn configuration(State(state): State<AppState>) -> Response {
    let iss = &state.issuer;
    let body = Json(json!({
        "spec_version": "1_0",
        "issuer": iss,
        "jwks_uri": format!("{iss}/jwks.json"),
        "delivery_methods_supported": [ssf::PUSH, ssf::POLL],
        "configuration_endpoint": format!("{iss}/ssf/stream"),
        "status_endpoint": format!("{iss}/ssf/status"),
        "verification_endpoint": format!("{iss}/ssf/verify"),
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:6749" }],
        "default_subjects": "ALL",
    }));
    let mut response = body.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}

/// The receiving client of `caller`, once it holds one of `scopes` (in the
/// token and still in its client's `scopes`).
fn receiver(state: &AppState, caller: &Caller, scopes: &[&str]) -> Result<String, ServiceError> {
    if caller.claims.sid.is_some() {
        return Err(ServiceError::Forbidden(
            "the revocation feed takes a client-credentials token of the receiving client, not a user's token"
                .to_owned(),
        ));
    }
    let client_id = &caller.claims.client_id;
    let client = state.clients.get(client_id);
    let granted = |s: &&str| {
        caller.claims.scope.split(' ').any(|t| t == *s) && client.as_ref().is_some_and(|c| c.scopes.contains(s))
    };
    if scopes.iter().any(granted) {
        Ok(client_id.clone())
    } else {
        Err(ServiceError::InsufficientScope(format!(
            "this needs a token with scope {} of a client allowed it",
            scopes.join(" or ")
        )))
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A JSON object body (an empty body is `{}`): at most 64 KiB, no key twice
/// (the admin API's rules).
fn json_object(body: &Bytes) -> Result<Map<String, Value>, ServiceError> {
    if body.len() > JSON_BODY_LIMIT {
        return Err(ServiceError::TooLarge(format!("the body exceeds {} KiB", JSON_BODY_LIMIT / 1024)));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ServiceError::invalid("the body must be a JSON object")),
    }
}

fn stream_id_of(body: &Map<String, Value>) -> Result<String, ServiceError> {
    match body.get("stream_id") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ServiceError::invalid("stream_id: must be a string")),
        None => Err(ServiceError::invalid("stream_id: is required")),
    }
}

/// The caller's stream, checked against the `stream_id` it named (if any).
async fn own_stream(state: &AppState, client_id: &str, stream_id: Option<&str>) -> Result<Stream, ServiceError> {
    let stream = state.store.ssf_stream(client_id).await.map_err(|e| internal("reading an SSF stream", e))?;
    match (stream, stream_id) {
        (None, _) => Err(ServiceError::not_found(format!(
            "client {client_id:?} has no event stream; create one with POST /ssf/stream"
        ))),
        (Some(s), Some(id)) if s.stream_id != id => {
            Err(ServiceError::not_found(format!("client {client_id:?} has no event stream {id:?}")))
        }
        (Some(s), _) => Ok(s),
    }
}

/// `GET /ssf/stream[?stream_id=]`: the caller's stream; without
/// `stream_id`, a list of its streams (none or one).
pub async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    match query_param(q.as_deref(), "stream_id") {
        Some(id) => {
            Ok(no_store(Json(own_stream(&state, &client_id, Some(&id)).await?.view(&state.issuer)).into_response()))
        }
        None => {
            let stream = state.store.ssf_stream(&client_id).await.map_err(|e| internal("reading an SSF stream", e))?;
            let list: Vec<Value> = stream.iter().map(|s| s.view(&state.issuer)).collect();
            Ok(no_store(Json(list).into_response()))
        }
    }
}

/// `POST /ssf/stream`: create the caller's stream (201); 409 when it has one.
pub async fn create_stream(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_MANAGE])?;
    let body = json_object(&body)?;
    if let Some(existing) =
        state.store.ssf_stream(&client_id).await.map_err(|e| internal("reading an SSF stream", e))?
    {
        return Err(ServiceError::Conflict(format!(
            "client {client_id:?} already has event stream {:?} (one per receiving client); change it with PATCH or PUT",
            existing.stream_id
        )));
    }
    let stream = Stream::create(&client_id, &body, &state.issuer, state.now()).map_err(ServiceError::invalid)?;
    check_push_target(&state, &stream.delivery).await?;
    state.store.put_ssf_stream(&stream).await.map_err(|e| internal("storing an SSF stream", e))?;
    tracing::info!(%client_id, stream_id = %stream.stream_id, "SSF stream created");
    Ok(no_store((StatusCode::CREATED, Json(stream.view(&state.issuer))).into_response()))
}

/// `PATCH /ssf/stream`: change the properties named in the body.
pub async fn patch_stream(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ServiceError> {
    update_stream(state, caller, body, false).await
}

/// `PUT /ssf/stream`: replace the receiver-supplied properties.
pub async fn replace_stream(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ServiceError> {
    update_stream(state, caller, body, true).await
}

async fn update_stream(state: AppState, caller: Caller, body: Bytes, replace: bool) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_MANAGE])?;
    let body = json_object(&body)?;
    let stream = own_stream(&state, &client_id, Some(&stream_id_of(&body)?)).await?;
    let next = if replace { stream.replace(&body, &state.issuer) } else { stream.patch(&body, &state.issuer) }
        .map_err(ServiceError::invalid)?;
    if next.delivery != stream.delivery {
        check_push_target(&state, &next.delivery).await?;
    }
    state.store.put_ssf_stream(&next).await.map_err(|e| internal("storing an SSF stream", e))?;
    Ok(no_store(Json(next.view(&state.issuer)).into_response()))
}

/// A push endpoint must be a public address, or in one of the operator's
/// `feed.allowed_private_networks` (checked again at every connection).
async fn check_push_target(state: &AppState, delivery: &ssf::Delivery) -> Result<(), ServiceError> {
    let ssf::Delivery::Push { endpoint_url, .. } = delivery else { return Ok(()) };
    crate::worker::ssf_push::check_endpoint(&state.config.feed_push_targets, endpoint_url).await.map_err(|refused| {
        ServiceError::invalid(format!(
            "delivery.endpoint_url: {refused}; push delivery reaches only public addresses, \
             unless the operator allows the network in feed.allowed_private_networks"
        ))
    })
}

/// `DELETE /ssf/stream?stream_id=`: the stream and its queued events go.
pub async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_MANAGE])?;
    let id = query_param(q.as_deref(), "stream_id").ok_or_else(|| ServiceError::invalid("stream_id: is required"))?;
    own_stream(&state, &client_id, Some(&id)).await?;
    state.store.delete_ssf_stream(&client_id).await.map_err(|e| internal("deleting an SSF stream", e))?;
    tracing::info!(%client_id, stream_id = %id, "SSF stream deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ssf/status?stream_id=`.
pub async fn get_status(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    let id = query_param(q.as_deref(), "stream_id");
    Ok(no_store(Json(own_stream(&state, &client_id, id.as_deref()).await?.status_view()).into_response()))
}

/// `POST /ssf/status` `{stream_id, status, reason?}`: enable, pause
/// (events are held) or disable (queued events are dropped, none queued).
pub async fn set_status(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_MANAGE])?;
    let body = json_object(&body)?;
    let mut stream = own_stream(&state, &client_id, Some(&stream_id_of(&body)?)).await?;
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
    state.store.put_ssf_stream(&stream).await.map_err(|e| internal("storing an SSF stream", e))?;
    if status == StreamStatus::Disabled {
        state.store.clear_sets(&client_id).await.map_err(|e| internal("clearing an SSF queue", e))?;
    }
    tracing::info!(%client_id, status = status.as_str(), "SSF stream status changed");
    Ok(no_store(Json(stream.status_view()).into_response()))
}

/// `POST /ssf/verify` `{stream_id, state?}`: queue a verification event
/// (SSF 1.0 8.1.4); 204.
pub async fn verify(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_MANAGE])?;
    let body = json_object(&body)?;
    let stream = own_stream(&state, &client_id, Some(&stream_id_of(&body)?)).await?;
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
    let now = state.now();
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
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// RFC 8936 2.4 poll request.
#[derive(Debug, Default)]
struct PollRequest {
    max_events: Option<usize>,
    return_immediately: Option<bool>,
    ack: Vec<String>,
    set_errs: Map<String, Value>,
}

impl PollRequest {
    /// Every member checked, the message naming it.
    fn parse(body: &Map<String, Value>) -> Result<PollRequest, ServiceError> {
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

/// `POST /ssf/poll` (RFC 8936): acknowledge, then receive pending SETs.
pub async fn poll(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    let client_id = receiver(&state, &caller, &[ssf::SCOPE_READ, ssf::SCOPE_MANAGE])?;
    let request = PollRequest::parse(&json_object(&body)?)?;
    let stream = own_stream(&state, &client_id, None).await?;
    if !matches!(stream.delivery, ssf::Delivery::Poll) {
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
    let more = queued.len() > max;
    queued.truncate(max);
    let jtis: Vec<String> = queued.iter().map(|(_, set)| set.jti.clone()).collect();
    let signed = crate::worker::ssf_push::signed_sets(&state, &stream, queued, state.now())
        .await
        .map_err(|e| internal("signing SETs", e))?;
    let mut sets = Map::new();
    for (jti, (_, signed)) in jtis.into_iter().zip(signed) {
        sets.insert(jti, Value::String(signed.token));
    }
    Ok(no_store(Json(json!({ "sets": sets, "moreAvailable": more })).into_response()))
}
