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
//!
//! The CSRF check of the sign-in form, the cookies and the pages are the
//! browser's side: `http/authorize.rs`.

use super::failed_sign_ins::FailedAttempt;
use crate::audit::{AuditEvent, EventKind, escape_control};
use crate::clock::UnixTime;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::throttle::{SharedCounts, ThrottleKey};
use crate::secret::{Secret, VerifyError};
use crate::service::{AppState, ServiceError};
use crate::session::code::{AuthCode, new_code};
use crate::session::user_session::{UserSession, parse_cookie};
use crate::store::Store;

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
}

/// What a sign-in came to.
#[derive(Debug)]
pub enum SignedIn {
    /// A new session: the session cookie's value and, for "Remember me",
    /// its `Max-Age`.
    Session { cookie_value: String, max_age: Option<u64> },
    /// The form is refused; nothing was started.
    Refused(Refusal),
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
            return Ok(SignedIn::Refused(Refusal::AccountThrottled { retry_after_secs: wait }));
        }
    };
    let address_slot = match throttles.address.reserve(address_key, now) {
        Ok(slot) => slot,
        Err(refusal) => {
            account_slot.released();
            let wait = refusal.retry_after_secs();
            tracing::warn!(%remote, retry_after = wait, "sign-in throttled for the address");
            record_failure(state, None, remote, FailedAttempt::Throttled, now).await?;
            return Ok(SignedIn::Refused(Refusal::AddressThrottled { retry_after_secs: wait }));
        }
    };
    match check_password(state, username, password).await? {
        PasswordCheck::Busy => {
            // Nothing was decided: both slots go back (dropped).
            return Ok(SignedIn::Refused(Refusal::Busy));
        }
        PasswordCheck::Wrong => {
            account_slot.failed(now);
            address_slot.failed(now);
            throttles.user_address.share_failure(shared, account_key, now).await;
            throttles.address.share_failure(shared, address_key, now).await;
            record_failure(state, Some(&name), remote, FailedAttempt::WrongPassword, now).await?;
            return Ok(SignedIn::Refused(Refusal::WrongCredentials));
        }
        PasswordCheck::Right => {
            account_slot.succeeded();
            if account_on_record {
                shared.clear(account_key).await;
            }
            // A success does not wipe the address's count (one valid
            // account must not reset a spray).
            address_slot.released();
        }
    }

    // A sign-in in a browser that still carries another live session ends
    // that session: one browser, one session.
    let previous = live_session(state, form.session_cookie, now).await?;
    let (session, cookie_value) =
        UserSession::start(username, remember_me, form.user_agent, Some(remote.to_owned()), now)
            .map_err(|_| ServiceError::internal("starting a user session", "no randomness"))?;
    state
        .store
        .put_session(&session, state.keep_until(now))
        .await
        .map_err(|e| ServiceError::internal("storing a new user session", e))?;
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
    Right,
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
        Ok(matches) if known && matches => Ok(PasswordCheck::Right),
        Ok(_) => Ok(PasswordCheck::Wrong),
        Err(VerifyError::Busy) => Ok(PasswordCheck::Busy),
        Err(e @ VerifyError::Aborted) => Err(ServiceError::internal("verifying a password", e)),
    }
}
