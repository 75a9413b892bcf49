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
//! keeps it queued for another attempt after [`super::backoff`] (5 s after
//! the first failure, then doubling), and the stream's later SETs wait
//! behind it so order is kept. The queue is in the store, so what is not
//! delivered survives a restart; SETs older than the longest access-token
//! lifetime are dropped by the sweeper. Delivery is at least once: a crash
//! between the POST and the bookkeeping repeats the same SET (same `jti`).

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Delivery, QueuedSet, Stream, StreamStatus};
use crate::clock::UnixTime;
use crate::config::SigningAlg;
use crate::service::AppState;
use crate::store::Store;
use crate::token::jwt::{self, TokenType};

/// How often the queue is checked for due SETs.
pub const TICK: Duration = Duration::from_secs(1);
/// At most this many SETs are read per stream and tick.
pub const BATCH: usize = 100;
/// A receiver that has not answered within this time has failed the attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sign queued event `set` for `stream` as a SET (RS256, CAEP
/// interoperability profile; `typ: secevent+jwt`).
pub fn sign(state: &AppState, stream: &Stream, set: &QueuedSet, now: UnixTime) -> Result<String, String> {
    let keys = state.keys();
    let key = keys.id_token_key(Some(SigningAlg::RS256), now);
    jwt::sign(key, TokenType::SecEvent, &set.claims(&state.issuer, stream)).map_err(|e| e.to_string())
}

/// Run the worker until the task is aborted (at shutdown).
pub async fn push_periodically(state: AppState) {
    let http = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tenure/", env!("CARGO_PKG_VERSION"), " (SSF push)"))
        .build()
    {
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
                && super::receives(&state.clients, &stream.client_id);
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
        let outcome = match sign(state, stream, &set, now) {
            Ok(token) => post(http, endpoint_url, authorization_header.as_deref(), token).await,
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

/// One RFC 8935 2 request. The SET itself is never logged.
async fn post(http: &reqwest::Client, url: &str, authorization: Option<&str>, token: String) -> Result<(), Failure> {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/secevent+jwt")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(token);
    if let Some(a) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, a);
    }
    let response = request.send().await.map_err(|e| {
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
        return Err(Failure::Rejected(super::ReceiverError::from_body(&body).err));
    }
    Err(Failure::Retry(format!("the receiver answered HTTP {}", status.as_u16())))
}
