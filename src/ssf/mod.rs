//! The revocation feed (SPEC 13): tenure as an OpenID Shared Signals
//! Framework 1.0 transmitter.
//!
//! A receiver is a client with a client-credentials token (scopes
//! [`SCOPE_MANAGE`] and [`SCOPE_READ`], CAEP interoperability profile). It
//! configures one [`Stream`] (one per receiving client, which SSF 1.0
//! allows). Every revocation of a family, a session or a user queues one
//! CAEP `session-revoked` event per stream that asked for it, in the durable
//! SET queue of the store ([`QueuedSet`]): in the same store step when a user
//! is disabled or deleted ([`crate::store::Store::write_user`]), in the same step as the
//! revocation's own write otherwise; the events are signed as Security Event Tokens (RFC 8417,
//! `typ: secevent+jwt`, RS256) when they are handed out: by poll
//! (RFC 8936, `http/ssf.rs`) or push (RFC 8935, [`push`]).
//!
//! A queued event keeps its `jti` and `iat`, so a retried push or a repeated
//! poll hands out the same SET. It is signed once, off the request
//! executor, the first time it is handed out, and the signed form
//! ([`SignedSet`]) is kept with it in the queue (`service::feed::signed_sets`).
//! Verification requests are bounded per stream
//! ([`MIN_VERIFICATION_INTERVAL`], [`FeedGuards`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::audit::escape_control;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::oauth::client_auth::ClientRegistry;

use crate::token::claims::new_jti;

/// CAEP 1.0 3.1.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// SSF 1.0 8.1.4.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// Push delivery (RFC 8935).
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// Poll delivery (RFC 8936).
pub const POLL: &str = "urn:ietf:rfc:8936";
/// Stream configuration, status and verification (CAEP interoperability profile).
pub const SCOPE_MANAGE: &str = "ssf.manage";
/// Polling, and reading the stream configuration and status.
pub const SCOPE_READ: &str = "ssf.read";
/// The event types tenure transmits (verification events are always sent).
pub const EVENTS_SUPPORTED: [&str; 1] = [SESSION_REVOKED];

/// Whether a stream delivers (SSF 1.0 8.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// Events are queued and delivered.
    Enabled,
    /// Events are queued but held until the stream is enabled again.
    Paused,
    /// Nothing is queued; what was queued is dropped.
    Disabled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Enabled => "enabled",
            StreamStatus::Paused => "paused",
            StreamStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<StreamStatus> {
        match s {
            "enabled" => Some(StreamStatus::Enabled),
            "paused" => Some(StreamStatus::Paused),
            "disabled" => Some(StreamStatus::Disabled),
            _ => None,
        }
    }
}

/// How a stream's events reach the receiver.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Delivery {
    /// The receiver polls `POST /ssf/poll` (RFC 8936).
    Poll,
    /// tenure POSTs each SET to `endpoint_url` (RFC 8935), with the
    /// receiver's `Authorization` header value when it gave one.
    Push { endpoint_url: String, authorization_header: Option<String> },
}

impl std::fmt::Debug for Delivery {
    /// Never prints the receiver's authorization header.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivery::Poll => f.write_str("Poll"),
            Delivery::Push { endpoint_url, authorization_header } => f
                .debug_struct("Push")
                .field("endpoint_url", endpoint_url)
                .field("authorization_header", &authorization_header.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// One event stream, kept in the store under its receiving client's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// Transmitter-supplied, random.
    pub stream_id: String,
    /// The receiving client (one stream each).
    pub client_id: String,
    /// The `aud` of its SETs: the receiving client's id.
    pub aud: Vec<String>,
    pub events_requested: Vec<String>,
    pub delivery: Delivery,
    pub description: Option<String>,
    pub status: StreamStatus,
    pub status_reason: Option<String>,
    pub created_at: UnixTime,
}

impl Stream {
    /// What is delivered: the requested event types tenure supports.
    pub fn events_delivered(&self) -> Vec<String> {
        self.events_requested.iter().filter(|e| EVENTS_SUPPORTED.contains(&e.as_str())).cloned().collect()
    }

    /// Whether events of `event_type` are queued for this stream now.
    pub fn queues(&self, event_type: &str) -> bool {
        self.status != StreamStatus::Disabled
            && (event_type == VERIFICATION || self.events_delivered().iter().any(|e| e == event_type))
    }

    /// The stream configuration as SSF 1.0 8.1.1 shows it. The push
    /// authorization header is write-only.
    pub fn view(&self, issuer: &str) -> Value {
        let delivery = match &self.delivery {
            Delivery::Poll => json!({ "method": POLL, "endpoint_url": format!("{issuer}/ssf/poll") }),
            Delivery::Push { endpoint_url, .. } => json!({ "method": PUSH, "endpoint_url": endpoint_url }),
        };
        let mut v = json!({
            "stream_id": self.stream_id,
            "iss": issuer,
            "aud": aud_value(&self.aud),
            "events_supported": EVENTS_SUPPORTED,
            "events_requested": self.events_requested,
            "events_delivered": self.events_delivered(),
            "delivery": delivery,
            "min_verification_interval": MIN_VERIFICATION_INTERVAL.as_secs(),
        });
        if let (Some(d), Some(obj)) = (&self.description, v.as_object_mut()) {
            obj.insert("description".into(), Value::String(d.clone()));
        }
        v
    }

    /// `{stream_id, status, reason?}` (SSF 1.0 8.1.2).
    pub fn status_view(&self) -> Value {
        let mut v = json!({ "stream_id": self.stream_id, "status": self.status.as_str() });
        if let (Some(r), Some(obj)) = (&self.status_reason, v.as_object_mut()) {
            obj.insert("reason".into(), Value::String(r.clone()));
        }
        v
    }

    /// A new stream for `client_id` from a creation request.
    pub fn create(client_id: &str, body: &Map<String, Value>, issuer: &str, now: UnixTime) -> StreamResult<Stream> {
        let mut stream = Stream {
            stream_id: crate::session::new_id(),
            client_id: client_id.to_owned(),
            aud: vec![client_id.to_owned()],
            events_requested: Vec::new(),
            delivery: Delivery::Poll,
            description: None,
            status: StreamStatus::Enabled,
            status_reason: None,
            created_at: now,
        };
        if !body.contains_key("delivery") {
            return Err("delivery: is required, e.g. {\"method\": \"urn:ietf:rfc:8936\"} to poll".into());
        }
        stream.apply(body, issuer)?;
        Ok(stream)
    }

    /// PUT: replace every receiver-supplied property.
    pub fn replace(&self, body: &Map<String, Value>, issuer: &str) -> StreamResult<Stream> {
        let mut next = Stream { events_requested: Vec::new(), description: None, ..self.clone() };
        if !body.contains_key("delivery") {
            return Err("delivery: is required when replacing a stream".into());
        }
        next.apply(body, issuer)?;
        Ok(next)
    }

    /// PATCH: change the receiver-supplied properties present in `body`.
    pub fn patch(&self, body: &Map<String, Value>, issuer: &str) -> StreamResult<Stream> {
        let mut next = self.clone();
        next.apply(body, issuer)?;
        Ok(next)
    }

    fn apply(&mut self, body: &Map<String, Value>, issuer: &str) -> StreamResult<()> {
        for (field, value) in body {
            match field.as_str() {
                "events_requested" => {
                    let events: Vec<String> = serde_json::from_value(value.clone())
                        .map_err(|_| "events_requested: must be a list of event type URIs".to_owned())?;
                    if events.iter().any(|e| e.is_empty() || e.len() > 512) {
                        return Err("events_requested: each event type must be a URI of 1 to 512 characters".into());
                    }
                    self.events_requested = events;
                }
                "delivery" => self.delivery = parse_delivery(value, issuer)?,
                "description" => {
                    self.description = match value {
                        Value::Null => None,
                        Value::String(s) if s.len() <= 1000 => Some(s.clone()),
                        _ => return Err("description: must be a string of at most 1000 characters".into()),
                    }
                }
                // Transmitter-supplied: ignored when echoed back (SSF 1.0 8.1.1.3).
                "stream_id"
                | "iss"
                | "aud"
                | "events_supported"
                | "events_delivered"
                | "min_verification_interval"
                | "inactivity_timeout" => {}
                other => {
                    return Err(format!(
                        "unknown field {other:?}; a receiver may set events_requested, delivery and description"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A validation message naming the field and the rule.
pub type StreamResult<T> = std::result::Result<T, String>;

fn aud_value(aud: &[String]) -> Value {
    match aud {
        [one] => Value::String(one.clone()),
        many => json!(many),
    }
}

fn parse_delivery(value: &Value, issuer: &str) -> StreamResult<Delivery> {
    let obj = value.as_object().ok_or("delivery: must be an object with a method")?;
    let method = obj.get("method").and_then(Value::as_str).ok_or("delivery.method: is required")?;
    for field in obj.keys() {
        if !["method", "endpoint_url", "authorization_header"].contains(&field.as_str()) {
            return Err(format!(
                "delivery: unknown field {field:?}; known fields: method, endpoint_url, authorization_header"
            ));
        }
    }
    let endpoint = match obj.get("endpoint_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err("delivery.endpoint_url: must be a string".into()),
    };
    match method {
        POLL => {
            let ours = format!("{issuer}/ssf/poll");
            if endpoint.is_some_and(|e| e != ours) {
                return Err(format!("delivery.endpoint_url: for poll delivery tenure supplies it ({ours}); omit it"));
            }
            if obj.contains_key("authorization_header") {
                return Err("delivery.authorization_header: only applies to push delivery".into());
            }
            Ok(Delivery::Poll)
        }
        PUSH => {
            let url = endpoint.ok_or("delivery.endpoint_url: is required for push delivery")?;
            check_push_url(url)?;
            let authorization_header = match obj.get("authorization_header") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
                {
                    Some(s.clone())
                }
                Some(_) => {
                    return Err(
                        "delivery.authorization_header: must be printable ASCII of at most 4096 characters".into()
                    );
                }
            };
            Ok(Delivery::Push { endpoint_url: url.to_owned(), authorization_header })
        }
        other => Err(format!("delivery.method: {other:?} is not supported; use {POLL} (poll) or {PUSH} (push)")),
    }
}

/// Push endpoints are absolute `https` URLs without a fragment or
/// credentials; plain `http` only on a loopback host.
fn check_push_url(raw: &str) -> StreamResult<()> {
    let url =
        url::Url::parse(raw).map_err(|e| format!("delivery.endpoint_url: {raw:?} is not an absolute URL: {e}"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("delivery.endpoint_url: must use https (plain http only on a loopback host)".into()),
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("delivery.endpoint_url: must not carry a fragment or credentials".into());
    }
    Ok(())
}

/// Receiver text (a `jti` it names, an `err` code, a description) made
/// fit for a log line: at most `max` characters, control characters (and
/// the Unicode line separators) escaped, so a receiver can never start a
/// log line of its own.
pub fn loggable(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    escape_control(&cut).into_owned()
}

/// What a receiver said about one SET it could not process: a poll's
/// `setErrs` entry (RFC 8936 2.4) or a push's `400` body (RFC 8935 2.3),
/// `{"err": "...", "description": "..."}`, ready for the log
/// ([`loggable`]: `err` at most 64 characters, `description` 200).
#[derive(Debug, PartialEq, Eq)]
pub struct ReceiverError {
    pub err: String,
    pub description: String,
}

impl ReceiverError {
    pub fn from_body(body: &Value) -> ReceiverError {
        let text = |key: &str, max: usize| match body.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => loggable(s, max),
            Some(other) => loggable(&other.to_string(), max),
        };
        let err = text("err", 64);
        ReceiverError {
            err: if err.is_empty() { "unspecified".to_owned() } else { err },
            description: text("description", 200),
        }
    }
}

/// Who an event is about (RFC 9493 subject identifiers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum SetSubject {
    /// A user's every session: `iss_sub`.
    User { user: String },
    /// One session (and, for a family, the client it was issued to):
    /// `complex` with `user`, `session` and `application`.
    Session { user: String, sid: String, client_id: Option<String> },
    /// The stream itself (verification events): `opaque` stream id.
    Stream { stream_id: String },
}

impl SetSubject {
    /// The `sub_id` claim.
    pub fn sub_id(&self, issuer: &str) -> Value {
        let iss_sub = |user: &str| json!({ "format": "iss_sub", "iss": issuer, "sub": user });
        match self {
            SetSubject::User { user } => iss_sub(user),
            SetSubject::Session { user, sid, client_id } => {
                let mut v = json!({
                    "format": "complex",
                    "user": iss_sub(user),
                    "session": { "format": "opaque", "id": sid },
                });
                if let (Some(c), Some(obj)) = (client_id, v.as_object_mut()) {
                    obj.insert("application".into(), json!({ "format": "opaque", "id": c }));
                }
                v
            }
            SetSubject::Stream { stream_id } => json!({ "format": "opaque", "id": stream_id }),
        }
    }
}

/// The one event of a SET.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SetEvent {
    /// CAEP `session-revoked`.
    SessionRevoked { reason: String, initiating_entity: Option<String>, event_timestamp: UnixTime },
    /// SSF verification, echoing the receiver's `state`.
    Verification { state: Option<String> },
}

impl SetEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            SetEvent::SessionRevoked { .. } => SESSION_REVOKED,
            SetEvent::Verification { .. } => VERIFICATION,
        }
    }

    fn payload(&self) -> Value {
        match self {
            SetEvent::SessionRevoked { reason, initiating_entity, event_timestamp } => {
                let mut v = json!({
                    "event_timestamp": event_timestamp.as_secs(),
                    "reason_admin": { "en": reason_text(reason) },
                });
                if let (Some(who), Some(obj)) = (initiating_entity, v.as_object_mut()) {
                    obj.insert("initiating_entity".into(), Value::String(who.clone()));
                }
                v
            }
            SetEvent::Verification { state } => match state {
                Some(s) => json!({ "state": s }),
                None => json!({}),
            },
        }
    }
}

/// An administrator's reading of a revocation reason code.
pub fn reason_text(reason: &str) -> String {
    let text = match reason {
        "refresh_token_reuse" => "a spent refresh token was presented again (possible theft); the family was revoked",
        "authorization_code_replay" => "an authorization code was redeemed twice; the family was revoked",
        "revoked_by_client" => "the client revoked the token (RFC 7009)",
        "client_deleted" => "the client was deleted",
        "user_disabled" => "the user was disabled",
        "user_deleted" => "the user was deleted",
        "logout" => "the user signed out",
        "user_signed_out_everywhere" => "the user signed out of every session",
        "user_revoked" => "the user ended this session from their account",
        "admin_revoked" => "an administrator revoked it",
        _ => return format!("revoked: {reason}"),
    };
    text.to_owned()
}

/// CAEP `initiating_entity` for a revocation by `actor` for `reason`.
fn initiating_entity(actor: &str, reason: &str) -> &'static str {
    match reason {
        "refresh_token_reuse" | "authorization_code_replay" => "policy",
        "logout" | "user_signed_out_everywhere" | "user_revoked" => "user",
        "admin_revoked" | "user_disabled" | "user_deleted" | "client_deleted" => "admin",
        "revoked_by_client" => "system",
        _ if actor == "system" => "system",
        _ => "admin",
    }
}

/// SSF 1.0 8.1.1 `min_verification_interval`: a stream may ask for a
/// verification event at most this often; more often is answered 429.
pub const MIN_VERIFICATION_INTERVAL: Secs = Secs::new(30);

/// The feed's guards against receivers that would choose the server's
/// cost: one batch of SETs signed at a time (on the blocking pool), and
/// one verification request per stream and [`MIN_VERIFICATION_INTERVAL`].
pub struct FeedGuards {
    /// Held while a batch of SETs is signed.
    pub signing: tokio::sync::Semaphore,
    /// When each receiving client last had a verification event queued.
    verifications: Mutex<HashMap<String, UnixTime>>,
}

impl Default for FeedGuards {
    fn default() -> Self {
        FeedGuards { signing: tokio::sync::Semaphore::new(1), verifications: Mutex::default() }
    }
}

impl FeedGuards {
    /// Admit a verification request of the stream of `client_id` at
    /// `now`, or say how long until the next one is admitted.
    pub fn admit_verification(&self, client_id: &str, now: UnixTime) -> Result<(), Secs> {
        let mut last = self.verifications.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last.get(client_id) {
            let next = at.plus(MIN_VERIFICATION_INTERVAL);
            if now < next {
                return Err(Secs::new(next.as_secs() - now.as_secs()));
            }
        }
        last.insert(client_id.to_owned(), now);
        Ok(())
    }
}

/// A queued event signed as a SET, kept with it so that it is signed once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSet {
    /// The key that signed it: a SET whose key is no longer published is
    /// signed again.
    pub kid: String,
    /// The compact JWS.
    pub token: String,
}

impl std::fmt::Debug for SignedSet {
    /// The SET itself is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedSet").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// One event queued for one stream until delivered, acknowledged or too
/// old.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedSet {
    /// The receiving client whose stream it is queued for.
    pub client_id: String,
    pub jti: String,
    pub iat: UnixTime,
    pub subject: SetSubject,
    pub event: SetEvent,
    /// Failed push attempts so far.
    pub attempts: u32,
    pub next_attempt_at: UnixTime,
    /// The SET, once signed (absent in records written before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedSet>,
}

impl QueuedSet {
    pub fn new(client_id: &str, subject: SetSubject, event: SetEvent, now: UnixTime) -> QueuedSet {
        QueuedSet {
            client_id: client_id.to_owned(),
            jti: new_jti(),
            iat: now,
            subject,
            event,
            attempts: 0,
            next_attempt_at: now,
            signed: None,
        }
    }

    /// The SET claims (RFC 8417 2.2, SSF 1.0 4) for `stream`.
    pub fn claims(&self, issuer: &str, stream: &Stream) -> Value {
        json!({
            "iss": issuer,
            "iat": self.iat.as_secs(),
            "jti": self.jti,
            "aud": aud_value(&stream.aud),
            "sub_id": self.subject.sub_id(issuer),
            "events": { self.event.event_type(): self.event.payload() },
        })
    }

    /// After a failed push at `now`: one more attempt counted, next one
    /// after [`backoff`].
    pub fn after_failure(&self, now: UnixTime) -> QueuedSet {
        let attempts = self.attempts.saturating_add(1);
        QueuedSet { attempts, next_attempt_at: now.plus(backoff(attempts)), ..self.clone() }
    }
}

/// The wait before push attempt `attempts + 1`: 5 s after the first
/// failure (SPEC 5 asks for a first retry within 30 s), doubling up to
/// about half an hour.
pub fn backoff(attempts: u32) -> Secs {
    let exp = attempts.saturating_sub(1).min(9);
    Secs::new(5u64 << exp)
}

/// Whether client `client_id` may still receive the feed: it exists and
/// is allowed `ssf.read` or `ssf.manage`. A stream of a client that was
/// removed (or lost both scopes) is kept but neither fed nor pushed to.
pub fn receives(clients: &ClientRegistry, client_id: &str) -> bool {
    clients.get(client_id).is_some_and(|c| c.scopes.contains(SCOPE_READ) || c.scopes.contains(SCOPE_MANAGE))
}

/// The `session-revoked` events about `subject`, one for every stream of
/// `streams` that takes them, for the store step of the revocation that
/// queues them (`Fallout` in `service/revocation.rs`).
pub fn session_revoked_sets(
    streams: &[Stream],
    clients: &ClientRegistry,
    subject: SetSubject,
    actor: &str,
    reason: &str,
    now: UnixTime,
) -> Vec<QueuedSet> {
    let event = SetEvent::SessionRevoked {
        reason: reason.to_owned(),
        initiating_entity: Some(initiating_entity(actor, reason).to_owned()),
        event_timestamp: now,
    };
    streams
        .iter()
        .filter(|s| s.queues(SESSION_REVOKED) && receives(clients, &s.client_id))
        .map(|s| QueuedSet::new(&s.client_id, subject.clone(), event.clone(), now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "http://issuer.test";
    const T0: UnixTime = UnixTime(1_700_000_000);

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_poll_stream_is_created_with_transmitter_supplied_properties() {
        let s = Stream::create(
            "rs",
            &body(json!({ "delivery": { "method": POLL }, "events_requested": [SESSION_REVOKED, "urn:other"] })),
            ISS,
            T0,
        )
        .expect("valid");
        let v = s.view(ISS);
        assert_eq!(v["delivery"]["endpoint_url"], "http://issuer.test/ssf/poll");
        assert_eq!(v["aud"], "rs");
        assert_eq!(v["events_delivered"], json!([SESSION_REVOKED]));
        assert_eq!(v["events_requested"], json!([SESSION_REVOKED, "urn:other"]));
        assert!(s.queues(SESSION_REVOKED) && s.queues(VERIFICATION));
    }

    #[test]
    fn bad_stream_requests_name_the_field() {
        let err = |v: Value| Stream::create("rs", &body(v), ISS, T0).expect_err("invalid");
        assert!(err(json!({})).starts_with("delivery: is required"));
        assert!(err(json!({ "delivery": { "method": "urn:x" } })).contains("delivery.method"));
        assert!(err(json!({ "delivery": { "method": PUSH } })).contains("delivery.endpoint_url: is required"));
        assert!(
            err(json!({ "delivery": { "method": PUSH, "endpoint_url": "http://rs.example/ssf" } })).contains("https")
        );
        assert!(err(json!({ "delivery": { "method": POLL }, "events_requested": "x" })).contains("events_requested"));
        assert!(err(json!({ "delivery": { "method": POLL }, "colour": 1 })).contains("unknown field \"colour\""));
        let push = Stream::create(
            "rs",
            &body(json!({ "delivery": { "method": PUSH, "endpoint_url": "https://rs.example/ssf",
                "authorization_header": "Bearer xyz" } })),
            ISS,
            T0,
        )
        .expect("valid");
        assert!(push.view(ISS).to_string().find("xyz").is_none(), "the header is write-only");
        assert!(!format!("{push:?}").contains("xyz"), "and never in Debug output");
    }

    #[test]
    fn patch_keeps_what_it_does_not_name_and_put_replaces() {
        let s = Stream::create(
            "rs",
            &body(json!({ "delivery": { "method": POLL }, "events_requested": [SESSION_REVOKED], "description": "d" })),
            ISS,
            T0,
        )
        .expect("valid");
        let patched = s.patch(&body(json!({ "description": "e" })), ISS).expect("valid");
        assert_eq!((patched.events_requested.len(), patched.description.as_deref()), (1, Some("e")));
        let replaced = s.replace(&body(json!({ "delivery": { "method": POLL } })), ISS).expect("valid");
        assert!(replaced.events_requested.is_empty() && replaced.description.is_none());
        assert_eq!(replaced.stream_id, s.stream_id);
    }

    #[test]
    fn session_revoked_sets_carry_complex_and_iss_sub_subjects() {
        let stream = Stream::create("rs", &body(json!({ "delivery": { "method": POLL } })), ISS, T0).expect("valid");
        let event = SetEvent::SessionRevoked {
            reason: "refresh_token_reuse".into(),
            initiating_entity: Some("policy".into()),
            event_timestamp: T0,
        };
        let family = SetSubject::Session { user: "alice".into(), sid: "s1".into(), client_id: Some("web".into()) };
        let c = QueuedSet::new("rs", family, event.clone(), T0).claims(ISS, &stream);
        assert_eq!(c["sub_id"]["format"], "complex");
        assert_eq!(c["sub_id"]["user"], json!({ "format": "iss_sub", "iss": ISS, "sub": "alice" }));
        assert_eq!(c["sub_id"]["session"], json!({ "format": "opaque", "id": "s1" }));
        assert_eq!(c["sub_id"]["application"], json!({ "format": "opaque", "id": "web" }));
        let payload = &c["events"][SESSION_REVOKED];
        assert_eq!(payload["event_timestamp"], T0.as_secs());
        assert!(payload["reason_admin"]["en"].as_str().is_some_and(|t| t.contains("refresh token")));
        let user = QueuedSet::new("rs", SetSubject::User { user: "bob".into() }, event, T0).claims(ISS, &stream);
        assert_eq!(user["sub_id"], json!({ "format": "iss_sub", "iss": ISS, "sub": "bob" }));
        assert_eq!((user["aud"].as_str(), user["iss"].as_str()), (Some("rs"), Some(ISS)));
    }

    #[test]
    fn who_initiated_a_revocation_follows_its_reason() {
        assert_eq!(initiating_entity("system", "refresh_token_reuse"), "policy");
        assert_eq!(initiating_entity("alice", "logout"), "user");
        assert_eq!(initiating_entity("alice", "user_revoked"), "user");
        assert_eq!(initiating_entity("carol", "admin_revoked"), "admin");
        assert_eq!(initiating_entity("client:web", "revoked_by_client"), "system");
        assert_eq!(reason_text("admin_revoked"), "an administrator revoked it");
        assert_eq!(reason_text("something_new"), "revoked: something_new");
    }

    #[test]
    fn push_retries_start_within_30_s_and_back_off() {
        let set =
            QueuedSet::new("rs", SetSubject::User { user: "a".into() }, SetEvent::Verification { state: None }, T0);
        let first = set.after_failure(T0);
        assert_eq!((first.attempts, first.next_attempt_at), (1, T0.plus(Secs::new(5))));
        assert_eq!(first.after_failure(T0).next_attempt_at, T0.plus(Secs::new(10)));
        assert_eq!(backoff(30), Secs::new(2560));
        assert_eq!(first.jti, set.jti, "a retry sends the same SET");
    }

    #[test]
    fn receiver_text_cannot_start_a_log_line() {
        let forged = "x\n2026-12-06T12:00:00Z  INFO audit event audit=\"user.created\"\r\u{2028}";
        assert_eq!(loggable(forged, 200).lines().count(), 1);
        assert!(!loggable(forged, 200).contains(['\n', '\r', '\u{2028}']));
        assert_eq!(loggable("abcdef", 3), "abc");
        let e = ReceiverError::from_body(&json!({ "err": forged, "description": format!("d\n{forged}") }));
        assert!(!e.err.contains('\n') && !e.description.contains('\n') && !e.description.contains('\r'));
        assert!(e.err.starts_with("x\\n2026"), "{}", e.err);
        assert_eq!(ReceiverError::from_body(&json!({})).err, "unspecified");
        assert_eq!(ReceiverError::from_body(&json!({ "err": 7 })).err, "7");
    }

    #[test]
    fn a_stream_asks_for_verification_at_most_once_per_interval() {
        let guards = FeedGuards::default();
        assert_eq!(guards.admit_verification("rs", T0), Ok(()));
        assert_eq!(guards.admit_verification("rs", T0.plus(Secs::new(1))), Err(Secs::new(29)));
        assert_eq!(guards.admit_verification("other", T0.plus(Secs::new(1))), Ok(()), "per stream");
        assert_eq!(guards.admit_verification("rs", T0.plus(MIN_VERIFICATION_INTERVAL)), Ok(()));
        assert!(guards.admit_verification("rs", T0.plus(Secs::new(31))).is_err());
    }

    #[test]
    fn disabled_streams_queue_nothing() {
        let mut s = Stream::create(
            "rs",
            &body(json!({ "delivery": { "method": POLL }, "events_requested": [SESSION_REVOKED] })),
            ISS,
            T0,
        )
        .expect("valid");
        s.status = StreamStatus::Paused;
        assert!(s.queues(SESSION_REVOKED));
        s.status = StreamStatus::Disabled;
        assert!(!s.queues(SESSION_REVOKED) && !s.queues(VERIFICATION));
    }
}
