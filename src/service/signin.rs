//! Sign-in and single sign-on (SPEC 2, 3, 7): the browser's live session,
//! the code issued to it, and the sign-in itself — throttle, argon2 check,
//! audit, the new session replacing the browser's previous one.
//!
//! - Sign-in attempts are counted before the password is checked, per
//!   username and address and per address (SPEC 7), with a lock that
//!   doubles; failures are audited in aggregate; the password check costs
//!   the same for unknown usernames and runs within the hashing bound.
//! - A new sign-in ends the browser's previous session: one browser, one
//!   session.
//! - A refresh of any family of a session counts as its activity
//!   ([`UserSession::is_live`], the one place that rule lives).
//! - Under a session limit (SPEC 14, `session.max_sessions`), the new
//!   session is stored by [`Store::start_session`], which decides against
//!   the user's sessions in the same step ([`crate::session::limit::admit`]):
//!   `end_oldest` ends the least recently active ones there; `ask` stores
//!   nothing and keeps the sign-in pending (in the store, so that any
//!   replica continues it: bounded, expiring, found by the SHA-256 of its
//!   id, bound to the browser) until the user ends one of their sessions
//!   ([`choose`]) or cancels.
//!
//! The CSRF check of the sign-in form, the cookies and the pages are the
//! browser's side: `http/authorize.rs`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};

use super::failed_sign_ins::FailedAttempt;
use crate::audit::{AuditEvent, EventKind, escape_control};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::throttle::{SharedCounts, ThrottleKey};
use crate::policy::{OnSessionLimit, SessionLimit};
use crate::secret::{Secret, VerifyError};
use crate::service::{AppState, ServiceError};
use crate::session::code::{AuthCode, new_code};
use crate::session::limit::admit;
use crate::session::user_session::{UserSession, parse_cookie};
use crate::store::{Admission, PendingSignInRecord, Store};
use crate::user::User;

/// Why a browser's previous session ended when it signed in again.
pub const REASON_REPLACED: &str = "replaced_by_new_sign_in";

/// The session the session cookie's value proves, if it is alive at `now`
/// and its user still exists.
pub async fn live_session(
    state: &AppState,
    session_cookie: Option<&str>,
    now: UnixTime,
) -> Result<Option<UserSession>, ServiceError> {
    let Some((sid, secret)) = session_cookie.and_then(parse_cookie) else {
        return Ok(None);
    };
    let Some(session) =
        state.store.session(sid).await.map_err(|e| ServiceError::internal("reading a user session", e))?
    else {
        return Ok(None);
    };
    let user = state.user(&session.username).await.map_err(|e| ServiceError::internal("reading a user", e))?;
    let Some(user) = user.filter(|_| session.cookie_matches(secret)) else {
        return Ok(None);
    };
    // SPEC 3: a refresh of any family of the session is activity too; the
    // store records it on the session itself, so this is one read whatever
    // the number of families. SPEC 14: the user's groups tighten the policy.
    Ok(session.is_live(&state.history_of_member(&user.groups), &[], now).then_some(session))
}

/// Store a code of `request` for `session`'s user (durable before the
/// redirect) and record the single sign-on as session activity. Returns the
/// code, for the redirect.
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &UserSession,
    now: UnixTime,
) -> Result<String, ServiceError> {
    let (code, key) =
        new_code().map_err(|_| ServiceError::internal("drawing an authorization code", "no randomness"))?;
    let record = AuthCode {
        client_id: request.target.client.id.clone(),
        redirect_uri: request.target.redirect_uri.clone(),
        redirect_uri_given: request.target.redirect_uri_given,
        scope: request.scope.to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        sid: session.sid.clone(),
        username: session.username.clone(),
        auth_time: session.signed_in,
        remember_me: session.remember_me,
        issued_at: now,
        redeemed_family: None,
        dpop_jkt: request.dpop_jkt.clone(),
    };
    state
        .store
        .put_code(&key, &record)
        .await
        .map_err(|e| ServiceError::internal("storing an authorization code", e))?;
    // SPEC 3, atomically: a revoked session is left alone, so a concurrent
    // revocation always wins.
    state
        .store
        .touch_session(&session.sid, now)
        .await
        .map_err(|e| ServiceError::internal("recording session activity", e))?;
    tracing::info!(client_id = %record.client_id, sid = %session.sid, "authorization code issued");
    Ok(code)
}

/// A sign-in form as the browser sent it (its CSRF token already checked).
pub struct SignIn<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub remember_me: bool,
    /// The client's address (throttling, audit, the session record).
    pub remote: &'a str,
    pub user_agent: Option<String>,
    /// The value of the browser's session cookie, if it sent one.
    pub session_cookie: Option<&'a str>,
    /// How to ask the user which session to end, when the policy says
    /// `ask` and they are at the limit; `None` where nobody can be asked
    /// (the first-run page): the least recently active session ends.
    pub ask: Option<Ask<'a>>,
}

/// What a pending sign-in keeps for the browser's side (SPEC 14, `ask`).
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// What the page needs to continue afterwards (the authorization
    /// request); opaque here.
    pub resume: &'a str,
    /// A value only the browser that signed in holds (its CSRF cookie): the
    /// pending sign-in is bound to it.
    pub browser: &'a str,
}

/// What a sign-in came to.
#[derive(Debug)]
pub enum SignedIn {
    /// A new session: the session cookie's value and, for "Remember me",
    /// its `Max-Age`.
    Session { cookie_value: String, max_age: Option<u64> },
    /// The form is refused; nothing was started.
    Refused(Refusal),
    /// The password was right but the user is at the session limit and the
    /// policy says `ask`: nothing was started; the sign-in waits.
    AtLimit(AtLimit),
}

/// A sign-in waiting for its user to end one of their live sessions.
#[derive(Debug)]
pub struct AtLimit {
    /// The pending sign-in's id (a secret of the browser's form).
    pub pending: String,
    pub username: String,
    pub max_sessions: u64,
    /// The user's live sessions, least recently active first.
    pub live: Vec<UserSession>,
}

/// Why a sign-in form was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The username or the password is empty.
    MissingCredentials,
    /// Too many failures for this account from this address: retry after.
    AccountThrottled { retry_after_secs: u64 },
    /// Too many failures from this address: retry after.
    AddressThrottled { retry_after_secs: u64 },
    /// Every hashing slot stayed busy: nothing was checked.
    Busy,
    /// Unknown user or wrong password (the same answer for both).
    WrongCredentials,
}

/// Check `form` at `now` and, when right, start a session (audited),
/// ending the browser's previous one.
pub async fn sign_in(state: &AppState, form: SignIn<'_>, now: UnixTime) -> Result<SignedIn, ServiceError> {
    let SignIn { username, password, remember_me, remote, .. } = form;
    if username.is_empty() || password.is_empty() {
        return Ok(SignedIn::Refused(Refusal::MissingCredentials));
    }

    let user = match check_throttled(state, username, password, remote, now).await? {
        Ok(user) => user,
        Err(refusal) => return Ok(SignedIn::Refused(refusal)),
    };
    let start = Start {
        username,
        remember_me,
        user_agent: form.user_agent,
        remote,
        session_cookie: form.session_cookie,
        chosen: None,
    };
    start_session(state, &user, start, form.ask, now).await
}

/// A sign-in whose password was right, about to start its session.
struct Start<'a> {
    username: &'a str,
    remember_me: bool,
    user_agent: Option<String>,
    remote: &'a str,
    session_cookie: Option<&'a str>,
    /// The session the user chose to end (`ask`).
    chosen: Option<&'a str>,
}

/// Start the session of `start` (audited), under the user's session limit
/// if there is one, ending the browser's previous session.
async fn start_session(
    state: &AppState,
    user: &User,
    start: Start<'_>,
    ask: Option<Ask<'_>>,
    now: UnixTime,
) -> Result<SignedIn, ServiceError> {
    let Start { username, remember_me, remote, .. } = start;
    // A sign-in in a browser that still carries another live session ends
    // that session: one browser, one session.
    let previous = live_session(state, start.session_cookie, now).await?;
    let (session, cookie_value) =
        UserSession::start(username, remember_me, start.user_agent.clone(), Some(remote.to_owned()), now)
            .map_err(|_| ServiceError::internal("starting a user session", "no randomness"))?;
    let history = state.history();
    match history.current().session_limit(&user.groups, &state.groups()) {
        None => state
            .store
            .put_session(&session, state.keep_until(now))
            .await
            .map_err(|e| ServiceError::internal("storing a new user session", e))?,
        Some(limit) => {
            // Nobody to ask: the least recently active session ends.
            let limit = match ask {
                Some(_) => limit,
                None => SessionLimit { on_limit: OnSessionLimit::EndOldest, ..limit },
            };
            // The browser's previous session ends with this sign-in anyway:
            // it does not count against the limit.
            let replaced = previous.as_ref().map(|p| p.sid.as_str());
            let decide = |sessions: &[UserSession]| {
                let others: Vec<UserSession> =
                    sessions.iter().filter(|s| Some(s.sid.as_str()) != replaced).cloned().collect();
                admit(limit, &history, &others, start.chosen, now)
            };
            let admission = state
                .revocation(now)
                .start_session(&session, state.keep_until(now), decide, username)
                .await
                .map_err(|e| ServiceError::internal("storing a new user session under the session limit", e))?;
            match admission {
                Admission::Started { ended } => {
                    for s in &ended {
                        tracing::info!(sid = %s.sid, new_sid = %session.sid, "session ended by the session limit");
                    }
                }
                Admission::AtLimit { live } => {
                    let Some(ask) = ask else {
                        return Err(ServiceError::internal("a sign-in at the session limit", "nobody to ask"));
                    };
                    let pending = put_pending(
                        state,
                        PendingSignInRecord {
                            username: username.to_owned(),
                            remember_me,
                            user_agent: start.user_agent,
                            remote: remote.to_owned(),
                            resume: ask.resume.to_owned(),
                            browser: sha256(ask.browser),
                            expires_at: now.plus(PENDING_TTL),
                        },
                        now,
                    )
                    .await?;
                    let Some(pending) = pending else { return Ok(SignedIn::Refused(Refusal::Busy)) };
                    return Ok(SignedIn::AtLimit(AtLimit {
                        pending,
                        username: username.to_owned(),
                        max_sessions: limit.max,
                        live,
                    }));
                }
            }
        }
    }
    let event = AuditEvent::new(now, EventKind::SignIn, session.username.clone(), format!("session:{}", session.sid))
        .details(serde_json::json!({ "remember_me": remember_me, "ip": session.ip, "user_agent": session.user_agent }));
    state.store.append_event(&event).await.map_err(|e| ServiceError::internal("auditing a sign-in", e))?;
    event.log();
    if let Some(previous) = previous {
        state
            .revocation(now)
            .session(&previous.sid, username, REASON_REPLACED)
            .await
            .map_err(|e| ServiceError::internal("ending the browser's previous session", e))?;
    }
    // A "Remember me" cookie outlives the browser, up to the remember-me
    // absolute limit; otherwise it ends with the browser session.
    let max_age = remember_me.then(|| state.history().current().remember_me_max_lifetime.as_secs());
    Ok(SignedIn::Session { cookie_value: cookie_value.0, max_age })
}

/// Check `username`'s `password` under the sign-in throttle (SPEC 7): the
/// attempt is counted before the password is checked, per (username,
/// address) and per address; a wrong password counts against both and is
/// audited in aggregate. The sign-in form uses it, and so does a user
/// changing their own password (SPEC 14), so both share one count.
pub async fn check_throttled(
    state: &AppState,
    username: &str,
    password: &str,
    remote: &str,
    now: UnixTime,
) -> Result<Result<User, Refusal>, ServiceError> {
    // SPEC 7: counted before the password is checked, per (username,
    // address) and per address, so neither concurrency nor spraying many
    // usernames gets more guesses than the limits.
    let name: String = username.chars().take(64).collect();
    let throttles = &state.sign_in_throttles;
    let (account_key, address_key) =
        (ThrottleKey::of(&["user", username, remote]), ThrottleKey::of(&["address", remote]));
    // With several replicas the failures are counted in the store too: take
    // in what the others counted (one read each; nothing is written unless
    // the attempt fails, or succeeds after failures on record).
    let shared: &dyn SharedCounts = &state.store;
    let account_on_record = throttles.user_address.consult(shared, account_key, now).await;
    throttles.address.consult(shared, address_key, now).await;
    let account_slot = match throttles.user_address.reserve(account_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            let wait = refusal.retry_after_secs();
            tracing::warn!(username = %escape_control(&name), %remote, retry_after = wait, "sign-in throttled");
            record_failure(state, Some(&name), remote, FailedAttempt::Throttled, now).await?;
            return Ok(Err(Refusal::AccountThrottled { retry_after_secs: wait }));
        }
    };
    let address_slot = match throttles.address.reserve(address_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            account_slot.released();
            let wait = refusal.retry_after_secs();
            tracing::warn!(%remote, retry_after = wait, "sign-in throttled for the address");
            record_failure(state, None, remote, FailedAttempt::Throttled, now).await?;
            return Ok(Err(Refusal::AddressThrottled { retry_after_secs: wait }));
        }
    };
    match check_password(state, username, password).await? {
        PasswordCheck::Busy => {
            // Nothing was decided: both slots go back (dropped).
            Ok(Err(Refusal::Busy))
        }
        PasswordCheck::Wrong => {
            account_slot.failed(now);
            address_slot.failed(now);
            throttles.user_address.share_failure(shared, account_key, now).await;
            throttles.address.share_failure(shared, address_key, now).await;
            record_failure(state, Some(&name), remote, FailedAttempt::WrongPassword, now).await?;
            Ok(Err(Refusal::WrongCredentials))
        }
        PasswordCheck::Right(user) => {
            account_slot.succeeded();
            if account_on_record {
                shared.clear(account_key).await;
            }
            // A success does not wipe the address's count (one valid
            // account must not reset a spray).
            address_slot.released();
            Ok(Ok(user))
        }
    }
}

/// Count a failed sign-in in its aggregated audit record.
async fn record_failure(
    state: &AppState,
    username: Option<&str>,
    remote: &str,
    attempt: FailedAttempt,
    now: UnixTime,
) -> Result<(), ServiceError> {
    state
        .failed_sign_ins
        .record(&state.store, username, remote, attempt, now)
        .await
        .map_err(|e| ServiceError::internal("auditing a failed sign-in", e))
}

/// The answer of a password check.
enum PasswordCheck {
    Right(User),
    Wrong,
    /// Every hashing slot stayed busy: nothing was checked.
    Busy,
}

/// Argon2 off the async executor, within the hashing bound. An unknown
/// username is checked against a dummy hash so the answer takes as long as
/// for a known one.
async fn check_password(state: &AppState, username: &str, password: &str) -> Result<PasswordCheck, ServiceError> {
    let user = state.user(username).await.map_err(|e| ServiceError::internal("reading a user", e))?;
    let (hash, known) = match user.as_ref() {
        Some(user) => (&user.password_hash, true),
        None => (&state.dummy_password_hash, false),
    };
    match state.hashing.verify(hash, &Secret::new(password)).await {
        Ok(true) if known => Ok(user.map_or(PasswordCheck::Wrong, PasswordCheck::Right)),
        Ok(_) => Ok(PasswordCheck::Wrong),
        Err(VerifyError::Busy) => Ok(PasswordCheck::Busy),
        Err(e @ VerifyError::Aborted) => Err(ServiceError::internal("verifying a password", e)),
    }
}

/// How long a sign-in waits for its user to pick a session to end.
pub const PENDING_TTL: Secs = Secs::minutes(5);

/// At most this many sign-ins wait at once (the oldest expire first);
/// beyond it a sign-in at the limit is answered "busy".
pub const MAX_PENDING: usize = 4096;

fn sha256(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, value.as_bytes()).as_ref());
    out
}

/// Keep `pending` in the store (SPEC 12: any replica continues it) under
/// the SHA-256 of a fresh id; the id, `None` when [`MAX_PENDING`] are
/// waiting.
async fn put_pending(
    state: &AppState,
    pending: PendingSignInRecord,
    now: UnixTime,
) -> Result<Option<String>, ServiceError> {
    let mut id = [0u8; 32];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| ServiceError::internal("drawing a pending sign-in id", "no randomness"))?;
    let id = B64.encode(id);
    let kept = state
        .store
        .put_pending_sign_in(&sha256(&id), &pending, MAX_PENDING, now)
        .await
        .map_err(|e| ServiceError::internal("keeping a pending sign-in", e))?;
    Ok(kept.then_some(id))
}

/// What the user chose on the "too many sessions" page.
#[derive(Clone, Copy, Debug)]
pub enum Choice<'a> {
    /// End session `sid` (one of theirs) and sign in.
    End(&'a str),
    /// Give up this sign-in.
    Cancel,
}

/// What a choice came to.
#[derive(Debug)]
pub enum Chosen {
    /// Signed in (the chosen session ended in the same step); continue at
    /// `resume`.
    SignedIn { cookie_value: String, max_age: Option<u64>, resume: String },
    /// The choice no longer frees a place (it ended meanwhile, or another
    /// sign-in took the place): choose again.
    AtLimit { at_limit: AtLimit, resume: String },
    /// The sign-in was given up; continue at `resume`.
    Cancelled { resume: String },
    /// No such pending sign-in for this browser (expired, used, unknown).
    Expired,
}

/// The user's choice for pending sign-in `id` (SPEC 14, `ask`), from the
/// browser bound to it. A choice of a session that is not the user's live
/// one ends nothing.
pub async fn choose(
    state: &AppState,
    id: &str,
    browser: &str,
    choice: Choice<'_>,
    session_cookie: Option<&str>,
    now: UnixTime,
) -> Result<Chosen, ServiceError> {
    let pending = state
        .store
        .take_pending_sign_in(&sha256(id), &sha256(browser), now)
        .await
        .map_err(|e| ServiceError::internal("taking a pending sign-in", e))?;
    let Some(pending) = pending else { return Ok(Chosen::Expired) };
    let chosen = match choice {
        Choice::Cancel => return Ok(Chosen::Cancelled { resume: pending.resume }),
        Choice::End(sid) => sid,
    };
    // The user may have been disabled or deleted meanwhile (`user` reads
    // only users who may sign in).
    let Some(user) = state.user(&pending.username).await.map_err(|e| ServiceError::internal("reading a user", e))?
    else {
        return Ok(Chosen::Expired);
    };
    let start = Start {
        username: &pending.username,
        remember_me: pending.remember_me,
        user_agent: pending.user_agent.clone(),
        remote: &pending.remote,
        session_cookie,
        chosen: Some(chosen),
    };
    let ask = Ask { resume: &pending.resume, browser };
    Ok(match start_session(state, &user, start, Some(ask), now).await? {
        SignedIn::Session { cookie_value, max_age } => {
            Chosen::SignedIn { cookie_value, max_age, resume: pending.resume }
        }
        SignedIn::AtLimit(at_limit) => Chosen::AtLimit { at_limit, resume: pending.resume },
        SignedIn::Refused(_) => Chosen::Expired,
    })
}
