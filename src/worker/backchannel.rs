//! OIDC Back-Channel Logout 1.0 delivery: the worker that empties the durable
//! outbox of [`crate::logout`] (SPEC 5).
//!
//! Every second it takes the deliveries that are due (at most [`BATCH`]) and
//! runs them concurrently, at most [`MAX_CONCURRENT`] at a time, so one slow
//! client never holds up the others:
//! - [`DeliveryKind::Logout`]: sign a logout token (2.4: `typ: logout+jwt`,
//!   `iss aud iat exp jti sub sid events`, never `nonce`, two minutes of
//!   lifetime) and POST it as the form parameter `logout_token` (2.5). 200 or
//!   204 is success (2.8); any other answer, a timeout or a connection error
//!   is retried from the persisted queue with [`backoff`] (first retry within
//!   30 s), and dropped after [`MAX_ATTEMPTS`].
//! - [`DeliveryKind::UserFanout`]: expand a user-level revocation (one marker)
//!   into `Logout` deliveries for every session the marker covers.
//!
//! Delivery is at least once: a crash between the POST and the bookkeeping
//! repeats the POST after a restart, with a new `jti`; an RP treats a second
//! logout of a session it already ended as a no-op. The logout token itself
//! is never logged.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::{self, JoinSet};

use super::ssf_push::VettingResolver;
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::logout::{Delivery, DeliveryKind, MAX_ATTEMPTS, backoff};
use crate::service::AppState;
use crate::service::feed::literal_host;
use crate::service::revocation::Fallout;
use crate::store::{Store, StoreError};
use crate::token::claims::new_jti;
use crate::token::jwt::{self, TokenType};

/// How often the outbox is checked for due deliveries.
pub const TICK: Duration = Duration::from_secs(1);
/// At most this many due deliveries are read from the outbox at a time.
pub const BATCH: usize = 100;
/// At most this many deliveries are under way at once.
pub const MAX_CONCURRENT: usize = 16;
/// A client that has not answered within this time has failed the attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a replica holds the deliveries it claimed: far longer than an
/// attempt takes (the request timeout, then its bookkeeping), so only a
/// dead or stuck replica loses them to another.
pub const CLAIM_HOLD: Secs = Secs::new(30);
/// Logout tokens live two minutes (Back-Channel Logout 2.4, errata set 1).
pub const LOGOUT_TOKEN_LIFETIME: Secs = Secs::minutes(2);
/// The one member of the `events` claim (Back-Channel Logout 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Back-Channel Logout 1.0 2.4 logout-token claims. There is deliberately
/// no `nonce` (2.4: "A nonce Claim MUST NOT be present").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogoutClaims {
    pub iss: String,
    /// The client told about the logout.
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The user (their username, as in the ID token).
    pub sub: String,
    /// The session that ended (the ID token's `sid`).
    pub sid: String,
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
    #[schema(value_type = Object)]
    pub events: serde_json::Value,
}

impl LogoutClaims {
    /// A logout token for `client_id` about session `sid` of `sub`, issued at
    /// `now` with a fresh `jti`.
    pub fn new(issuer: &str, client_id: &str, sub: &str, sid: &str, now: UnixTime) -> LogoutClaims {
        LogoutClaims {
            iss: issuer.to_owned(),
            aud: client_id.to_owned(),
            iat: now.as_secs(),
            exp: now.plus(LOGOUT_TOKEN_LIFETIME).as_secs(),
            jti: new_jti(),
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

/// `d` after a failed attempt at `now`: rescheduled with one more attempt
/// counted, or `None` once it has had [`MAX_ATTEMPTS`].
pub fn after_failure(d: &Delivery, now: UnixTime) -> Option<Delivery> {
    let attempts = d.attempts.saturating_add(1);
    (attempts < MAX_ATTEMPTS).then(|| Delivery { attempts, next_attempt_at: now.plus(backoff(attempts)), ..d.clone() })
}

/// Run the worker until the task is aborted (at shutdown, like the sweeper).
pub async fn deliver_periodically(state: AppState) {
    match Worker::new(state) {
        Ok(worker) => worker.run().await,
        Err(e) => tracing::error!(
            error = %e,
            "cannot build the HTTP client for back-channel logout; deliveries stay queued until a restart"
        ),
    }
}

/// The HTTP clients of delivery. SECURITY: a client of the configuration
/// file is the operator's word and its URI is reached wherever it points;
/// a client created through the admin API is reached only at a public
/// address or in `logout.allowed_private_networks`, checked at every
/// connection (the [`VettingResolver`] for names, [`literal_host`] for
/// addresses written in the URI), so a name that later resolves elsewhere
/// is refused too.
#[derive(Clone)]
struct Senders {
    configured: reqwest::Client,
    vetted: reqwest::Client,
}

/// The delivery worker: the outbox reader and the deliveries under way.
pub struct Worker {
    state: AppState,
    http: Senders,
    tasks: JoinSet<()>,
    /// Which outbox entry each running task works on, so an entry still under
    /// way (it stays due until its attempt is recorded) is not started twice.
    in_flight: HashMap<task::Id, u64>,
}

impl Worker {
    pub fn new(state: AppState) -> Result<Worker, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                // A redirect is not a 200: no POST is replayed elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tenure/", env!("CARGO_PKG_VERSION"), " (back-channel logout)"))
        };
        let vetting = VettingResolver::new(state.config.logout_targets.clone());
        let http = Senders {
            configured: builder().build()?,
            vetted: builder().no_proxy().dns_resolver(std::sync::Arc::new(vetting)).build()?,
        };
        Ok(Worker { state, http, tasks: JoinSet::new(), in_flight: HashMap::new() })
    }

    /// Every [`TICK`], and whenever a delivery finishes, start what is due.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = self.reap_one(), if !self.tasks.is_empty() => {}
            }
            let now = self.state.now();
            self.dispatch(now).await;
        }
    }

    /// Start the deliveries due at `now` that are not under way yet, up to
    /// [`MAX_CONCURRENT`] running at once.
    pub async fn dispatch(&mut self, now: UnixTime) {
        if self.tasks.len() >= MAX_CONCURRENT {
            return;
        }
        // Claimed for this replica until CLAIM_HOLD from now: no other
        // replica attempts them meanwhile; if this one dies, another does
        // once the claim has run out.
        let claimed =
            self.state.store.claim_deliveries(crate::worker::replica::replica_id(), now, now.plus(CLAIM_HOLD), BATCH);
        let due = match claimed.await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "reading the back-channel logout outbox failed");
                return;
            }
        };
        for (id, delivery) in due {
            if self.tasks.len() >= MAX_CONCURRENT {
                break;
            }
            if self.in_flight.values().any(|&busy| busy == id) {
                continue;
            }
            let handle = self.tasks.spawn(attempt(self.state.clone(), self.http.clone(), id, delivery, now));
            self.in_flight.insert(handle.id(), id);
        }
    }

    /// Wait until every delivery under way has finished.
    pub async fn drain(&mut self) {
        while self.reap_one().await.is_some() {}
    }

    /// Wait for one delivery under way to finish; `None` when none is.
    async fn reap_one(&mut self) -> Option<()> {
        let task_id = match self.tasks.join_next_with_id().await? {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a back-channel logout delivery task failed; it stays queued");
                e.id()
            }
        };
        self.in_flight.remove(&task_id);
        Some(())
    }
}

/// Why an attempt failed. Never carries the logout token.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the back-channel logout URI is not an allowed target: {0}")]
    Refused(String),
    #[error("the client answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("the request failed: {0}")]
    Request(String),
    #[error("signing the logout token failed")]
    Sign,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One attempt at outbox entry `id`, then its bookkeeping: dropped when
/// done (or given up), rescheduled otherwise.
async fn attempt(state: AppState, http: Senders, id: u64, delivery: Delivery, now: UnixTime) {
    let outcome = match &delivery.kind {
        DeliveryKind::Logout { client_id, uri: _, sid } => {
            deliver_logout(&state, &http, &delivery, client_id, sid, now).await
        }
        DeliveryKind::UserFanout { seq } => fan_out(&state, &delivery, *seq, now).await.map(|queued| {
            tracing::info!(sub = %delivery.sub, queued, "back-channel logouts queued for every session of a user");
        }),
    };
    let next = match &outcome {
        Ok(()) => None,
        Err(e) => {
            let next = after_failure(&delivery, now);
            log_failure(&delivery, e, next.as_ref());
            next
        }
    };
    if let Err(e) = state.store.finish_attempt(id, &delivery, next.as_ref()).await {
        tracing::error!(error = %e, "recording a back-channel logout attempt failed; it will be attempted again");
    }
}

/// Deliver logout token delivery `d` to `client_id` as configured now: a
/// client that was removed or no longer takes back-channel logouts is sent
/// nothing, and a corrected URI applies to what is still queued.
async fn deliver_logout(
    state: &AppState,
    http: &Senders,
    d: &Delivery,
    client_id: &str,
    sid: &str,
    now: UnixTime,
) -> Result<(), AttemptError> {
    let Some(uri) = state.clients.get(client_id).and_then(|c| c.backchannel_logout_uri.clone()) else {
        tracing::info!(%client_id, %sid, "back-channel logout dropped: the client has no backchannel_logout_uri now");
        return Ok(());
    };
    let http = if state.clients.is_from_config(client_id) {
        &http.configured
    } else {
        if let Some(ip) = url::Url::parse(&uri).ok().as_ref().and_then(literal_host) {
            state.config.logout_targets.check(ip).map_err(|r| AttemptError::Refused(r.to_string()))?;
        }
        &http.vetted
    };
    send_logout_token(state, http, client_id, &uri, &d.sub, sid, now).await?;
    let attempts = d.attempts.saturating_add(1);
    tracing::info!(%client_id, %sid, attempts, "back-channel logout delivered");
    Ok(())
}

/// A failed attempt at `d`, retried as `next` or given up.
fn log_failure(d: &Delivery, error: &AttemptError, next: Option<&Delivery>) {
    let attempts = d.attempts.saturating_add(1);
    let outcome = match next {
        Some(n) => format!("will retry at {}", n.next_attempt_at),
        None => "given up after the maximum number of attempts".to_owned(),
    };
    match &d.kind {
        DeliveryKind::Logout { client_id, sid, .. } => {
            tracing::warn!(%client_id, %sid, attempts, %error, "back-channel logout attempt failed; {outcome}");
        }
        DeliveryKind::UserFanout { seq } => {
            tracing::warn!(sub = %d.sub, seq, attempts, %error, "back-channel logout fan-out failed; {outcome}");
        }
    }
}

/// Sign a logout token for `client_id` and POST it to `uri` (2.5).
async fn send_logout_token(
    state: &AppState,
    http: &reqwest::Client,
    client_id: &str,
    uri: &str,
    sub: &str,
    sid: &str,
    now: UnixTime,
) -> Result<(), AttemptError> {
    let claims = LogoutClaims::new(&state.issuer, client_id, sub, sid, now);
    let token = jwt::sign(state.keys().active(now), TokenType::Logout, &claims).map_err(|_| AttemptError::Sign)?;
    let body = form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", &token).finish();
    let response = http
        .post(uri)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { AttemptError::Timeout } else { AttemptError::Request(error_chain(&e)) })?;
    match response.status().as_u16() {
        200 | 204 => Ok(()),
        status => Err(AttemptError::Status(status)),
    }
}

/// Queue the logout deliveries of a user-level revocation: every session of
/// `d.sub` stored up to marker `seq`, except those revoked earlier (their
/// clients were told then). Returns how many were queued.
async fn fan_out(state: &AppState, d: &Delivery, seq: u64, now: UnixTime) -> Result<usize, AttemptError> {
    let fallout = Fallout::new(&state.clients, "system", now);
    let mut deliveries = Vec::new();
    for session in state.store.user_sessions(&d.sub).await? {
        let revoked_before = session.revoked.as_ref().is_some_and(|r| r.at < d.created_at);
        if session.seq > seq || revoked_before {
            continue;
        }
        let families = state.store.session_families(&session.sid).await?;
        deliveries.extend(fallout.deliveries(&session.sid, &d.sub, &families));
    }
    state.store.enqueue_deliveries(&deliveries).await?;
    Ok(deliveries.len())
}

/// An error and its sources, for the log (the URL is configuration, not a
/// secret; the body is never part of it).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::session::Revoked;
    use crate::session::code::AuthCode;
    use crate::session::family::Family;
    use crate::session::user_session::UserSession;
    use crate::store::SledStore;

    const T0: UnixTime = UnixTime(1_700_000_000);
    const ISSUER: &str = "http://issuer.test";

    /// A client endpoint that answers with `statuses` in turn (then 200) and
    /// records every body.
    #[derive(Clone, Default)]
    struct Endpoint {
        statuses: Arc<Mutex<Vec<u16>>>,
        bodies: Arc<Mutex<Vec<String>>>,
    }

    async fn receive(State(e): State<Endpoint>, body: String) -> StatusCode {
        e.bodies.lock().expect("lock").push(body);
        let mut statuses = e.statuses.lock().expect("lock");
        let status = if statuses.is_empty() { 200 } else { statuses.remove(0) };
        StatusCode::from_u16(status).expect("status")
    }

    async fn listen(endpoint: Endpoint) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/bc", axum::routing::post(receive)).with_state(endpoint);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/bc"), server)
    }

    /// A client endpoint answering with `statuses` in turn, listening, and a
    /// state whose client `web` has it as its back-channel logout URI.
    struct Setup {
        endpoint: Endpoint,
        uri: String,
        server: tokio::task::JoinHandle<()>,
        state: AppState,
        _dir: tempfile::TempDir,
    }

    async fn setup(statuses: Vec<u16>) -> Setup {
        let endpoint = Endpoint { statuses: Arc::new(Mutex::new(statuses)), ..Endpoint::default() };
        let (uri, server) = listen(endpoint.clone()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(&dir, &uri, &ManualClock::at(T0)).await;
        Setup { endpoint, uri, server, state, _dir: dir }
    }

    async fn state(dir: &tempfile::TempDir, uri: &str, clock: &ManualClock) -> AppState {
        let keys = dir.path().join("keys");
        let text = format!(
            r#"keys_dir = "{}"
[[clients]]
id = "web"
secret = "s"
redirect_uris = ["http://127.0.0.1:9000/cb"]
grant_types = ["authorization_code"]
backchannel_logout_uri = "{uri}"
"#,
            keys.display()
        );
        let config = Config::from_toml(&text, &Default::default()).expect("config");
        let store = SledStore::open(&dir.path().join("data")).expect("store");
        AppState::new(config, ISSUER.into(), store.into(), Arc::new(clock.clone())).await.expect("state")
    }

    fn logout(uri: &str) -> Delivery {
        Delivery {
            kind: DeliveryKind::Logout { client_id: "web".into(), uri: uri.into(), sid: "s1".into() },
            sub: "alice".into(),
            created_at: T0,
            attempts: 0,
            next_attempt_at: T0,
        }
    }

    fn token_of(body: &str) -> String {
        let (k, v) = form_urlencoded::parse(body.as_bytes()).next().expect("one parameter");
        assert_eq!(k, "logout_token");
        v.into_owned()
    }

    #[test]
    fn logout_tokens_carry_the_event_and_no_nonce() {
        let claims = LogoutClaims::new(ISSUER, "web", "alice", "s1", T0);
        let json = serde_json::to_value(&claims).expect("json");
        assert_eq!(json["events"], serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} }));
        assert_eq!(claims.exp - claims.iat, 120);
        assert!(json.get("nonce").is_none());
        assert_eq!(
            (json["aud"].as_str(), json["sub"].as_str(), json["sid"].as_str()),
            (Some("web"), Some("alice"), Some("s1"))
        );
        assert_ne!(claims.jti, LogoutClaims::new(ISSUER, "web", "alice", "s1", T0).jti);
    }

    #[test]
    fn failures_back_off_then_give_up() {
        let d = Delivery { next_attempt_at: T0, ..logout("u") };
        let first = after_failure(&d, T0).expect("retried");
        assert_eq!((first.attempts, first.next_attempt_at), (1, T0.plus(Secs::new(15))));
        let second = after_failure(&first, T0.plus(Secs::new(15))).expect("retried");
        assert_eq!((second.attempts, second.next_attempt_at), (2, T0.plus(Secs::new(45))));
        let last = Delivery { attempts: MAX_ATTEMPTS - 1, ..d };
        assert_eq!(after_failure(&last, T0), None);
    }

    #[tokio::test]
    async fn a_failed_delivery_is_retried_on_schedule_with_a_valid_token() {
        let Setup { endpoint, uri, server, state, _dir } = setup(vec![500]).await;
        state.store.enqueue_deliveries(&[logout(&uri)]).await.expect("enqueue");
        let mut worker = Worker::new(state.clone()).expect("worker");

        worker.dispatch(T0).await;
        worker.drain().await;
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 1, "first attempt answered 500");
        let due = state.store.due_deliveries(T0.plus(Secs::new(15)), 10).await.expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].1.attempts, due[0].1.next_attempt_at), (1, T0.plus(Secs::new(15))));

        worker.dispatch(T0.plus(Secs::new(14))).await;
        worker.drain().await;
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 1, "not due before the backoff");

        let t1 = T0.plus(Secs::new(15));
        worker.dispatch(t1).await;
        worker.drain().await;
        let bodies = endpoint.bodies.lock().expect("lock").clone();
        assert_eq!(bodies.len(), 2);
        assert!(state.store.due_deliveries(T0.plus(Secs::days(2)), 10).await.expect("due").is_empty(), "delivered");

        let claims: LogoutClaims = jwt::verify(
            &token_of(&bodies[1]),
            TokenType::Logout,
            &state.keys(),
            state.key_retention(),
            state.max_token_lifetime(),
            ISSUER,
            t1,
        )
        .expect("a logout token we signed");
        assert_eq!((claims.aud.as_str(), claims.sub.as_str(), claims.sid.as_str()), ("web", "alice", "s1"));
        assert_eq!((claims.iat, claims.exp), (t1.as_secs(), t1.as_secs() + 120));
        server.abort();
    }

    /// SECURITY: a client of the admin API is reached only where the
    /// operator allows, checked at the connection itself: its URI on this
    /// host (loopback, not allowed here) gets nothing, and the attempt
    /// counts as failed. The configuration file's client at the same URI is
    /// reached.
    #[tokio::test]
    async fn a_client_of_the_admin_api_is_not_reached_at_a_private_address() {
        let Setup { endpoint, uri, server, state, _dir } = setup(Vec::new()).await;
        let mut runtime = (*state.clients.get("web").expect("web")).clone();
        runtime.id = "rp".into();
        state.clients.put(runtime);
        let to_rp = Delivery {
            kind: DeliveryKind::Logout { client_id: "rp".into(), uri: uri.clone(), sid: "s1".into() },
            ..logout(&uri)
        };
        state.store.enqueue_deliveries(&[to_rp]).await.expect("enqueue");
        let mut worker = Worker::new(state.clone()).expect("worker");
        worker.dispatch(T0).await;
        worker.drain().await;
        assert!(endpoint.bodies.lock().expect("lock").is_empty(), "nothing sent to a loopback address");
        let due = state.store.due_deliveries(T0.plus(Secs::days(1)), 10).await.expect("due");
        assert_eq!(due.len(), 1, "the attempt failed and is retried later");
        assert_eq!(due[0].1.attempts, 1);

        state.store.enqueue_deliveries(&[logout(&uri)]).await.expect("enqueue");
        worker.dispatch(T0).await;
        worker.drain().await;
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 1, "the file's client is the operator's word");
        server.abort();
    }

    #[tokio::test]
    async fn a_delivery_under_way_is_not_started_twice() {
        let Setup { endpoint, uri, server, state, _dir } = setup(Vec::new()).await;
        state.store.enqueue_deliveries(&[logout(&uri)]).await.expect("enqueue");
        let mut worker = Worker::new(state.clone()).expect("worker");
        worker.dispatch(T0).await;
        worker.dispatch(T0).await;
        assert_eq!(worker.tasks.len(), 1);
        worker.drain().await;
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 1);
        assert!(worker.in_flight.is_empty());
        server.abort();
    }

    #[tokio::test]
    async fn a_user_revocation_fans_out_to_the_sessions_it_covers() {
        let Setup { endpoint, uri: _, server, state, _dir } = setup(Vec::new()).await;
        let keep = T0.plus(Secs::days(30));
        let mut sids = Vec::new();
        for n in 0..3u8 {
            let (session, _) = UserSession::start("alice", false, None, None, T0).expect("rng");
            state.store.put_session(&session, keep).await.expect("session");
            let key = [n];
            let code = AuthCode {
                client_id: "web".into(),
                redirect_uri: "http://127.0.0.1:9000/cb".into(),
                redirect_uri_given: true,
                scope: "openid".into(),
                nonce: None,
                code_challenge: None,
                sid: session.sid.clone(),
                username: "alice".into(),
                auth_time: T0,
                remember_me: false,
                issued_at: T0,
                redeemed_family: None,
                dpop_jkt: None,
            };
            state.store.put_code(&key, &code).await.expect("code");
            let family = Family {
                id: crate::session::new_id(),
                salt: "salt".into(),
                sid: session.sid.clone(),
                username: "alice".into(),
                client_id: "web".into(),
                scope: "openid".into(),
                auth_time: T0,
                remember_me: false,
                created_at: T0,
                generation: 0,
                rotated_at: T0,
                active_at: None,
                issues_refresh_tokens: true,
                revoked: None,
                jkt: None,
            };
            state.store.redeem_code(&key, &family, keep, T0, &crate::store::NoFallout).await.expect("redeem");
            sids.push(session.sid);
        }
        // The first session was logged out earlier: its client was told then.
        let earlier = Revoked { at: T0, reason: "logout".into(), by: None };
        state.store.revoke_session(&sids[0], &earlier, &crate::store::NoFallout).await.expect("revoke");
        let t1 = T0.plus(Secs::new(60));
        state.revocation(t1).user("alice", "root", "admin").await.expect("revoke user");
        // A session started after the revocation is not covered.
        let (later, _) = UserSession::start("alice", false, None, None, t1).expect("rng");
        state.store.put_session(&later, keep).await.expect("session");

        let mut worker = Worker::new(state.clone()).expect("worker");
        worker.dispatch(t1).await;
        worker.drain().await;
        let due = state.store.due_deliveries(t1, 10).await.expect("due");
        let mut told: Vec<String> = due
            .iter()
            .map(|(_, d)| match &d.kind {
                DeliveryKind::Logout { sid, .. } => sid.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        told.sort();
        let mut expected = sids[1..].to_vec();
        expected.sort();
        assert_eq!(told, expected);

        worker.dispatch(t1).await;
        worker.drain().await;
        assert_eq!(endpoint.bodies.lock().expect("lock").len(), 2);
        assert!(state.store.due_deliveries(t1, 10).await.expect("due").is_empty());
        server.abort();
    }
}
