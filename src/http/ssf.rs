//! The revocation feed's HTTP surface (SPEC 13): SSF 1.0 transmitter
//! metadata, the stream configuration, status and verification endpoints,
//! and RFC 8936 poll delivery.
//!
//! Every endpoint but the metadata takes a client-credentials token of the
//! receiving client: `ssf.manage` to change a stream (configuration, status,
//! verification), `ssf.read` (or `ssf.manage`) to read them and to poll. The
//! client must still be allowed the scope in its `scopes`. A user's token is
//! refused: receivers are services. The use cases are `service::feed`'s;
//! here the body is read and the result mapped.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Caller, JSON_BODY_LIMIT, parse_json};
use crate::service::feed::{self, PollRequest, Update};
use crate::service::{AppState, ServiceError};
use crate::ssf;

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

/// `GET /ssf/stream[?stream_id=]`: the caller's stream; without
/// `stream_id`, a list of its streams (none or one).
pub async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    match query_param(q.as_deref(), "stream_id") {
        Some(id) => {
            let stream = feed::stream(&state, &caller.claims, &id).await?;
            Ok(no_store(Json(stream.view(&state.issuer)).into_response()))
        }
        None => {
            let streams = feed::streams(&state, &caller.claims).await?;
            let list: Vec<Value> = streams.iter().map(|s| s.view(&state.issuer)).collect();
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
    let stream = feed::create_stream(&state, &caller.claims, &json_object(&body)?, state.now()).await?;
    Ok(no_store((StatusCode::CREATED, Json(stream.view(&state.issuer))).into_response()))
}

/// `PATCH /ssf/stream`: change the properties named in the body.
pub async fn patch_stream(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ServiceError> {
    update_stream(state, caller, body, Update::Patch).await
}

/// `PUT /ssf/stream`: replace the receiver-supplied properties.
pub async fn replace_stream(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ServiceError> {
    update_stream(state, caller, body, Update::Replace).await
}

async fn update_stream(state: AppState, caller: Caller, body: Bytes, update: Update) -> Result<Response, ServiceError> {
    let stream = feed::update_stream(&state, &caller.claims, &json_object(&body)?, update).await?;
    Ok(no_store(Json(stream.view(&state.issuer)).into_response()))
}

/// `DELETE /ssf/stream?stream_id=`: the stream and its queued events go.
pub async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    feed::delete_stream(&state, &caller.claims, query_param(q.as_deref(), "stream_id").as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /ssf/status?stream_id=`.
pub async fn get_status(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ServiceError> {
    let stream = feed::status(&state, &caller.claims, query_param(q.as_deref(), "stream_id").as_deref()).await?;
    Ok(no_store(Json(stream.status_view()).into_response()))
}

/// `POST /ssf/status` `{stream_id, status, reason?}`: enable, pause
/// (events are held) or disable (queued events are dropped, none queued).
pub async fn set_status(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    let stream = feed::set_status(&state, &caller.claims, &json_object(&body)?).await?;
    Ok(no_store(Json(stream.status_view()).into_response()))
}

/// `POST /ssf/verify` `{stream_id, state?}`: queue a verification event
/// (SSF 1.0 8.1.4); 204.
pub async fn verify(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    feed::verify(&state, &caller.claims, &json_object(&body)?, state.now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /ssf/poll` (RFC 8936): acknowledge, then receive pending SETs.
pub async fn poll(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Response, ServiceError> {
    let request = PollRequest::parse(&json_object(&body)?)?;
    let polled = feed::poll(&state, &caller.claims, request).await?;
    let mut sets = Map::new();
    for (jti, token) in polled.sets {
        sets.insert(jti, Value::String(token));
    }
    Ok(no_store(Json(json!({ "sets": sets, "moreAvailable": polled.more_available })).into_response()))
}
