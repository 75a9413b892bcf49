//! RP-Initiated Logout (SPEC 4): the browser's session and its end. Which
//! session may end, the confirmation page and its CSRF token, the
//! `id_token_hint` and the redirect are the browser's side
//! (`http/logout.rs`).

use crate::clock::UnixTime;
use crate::service::{AppState, ServiceError};
use crate::session::user_session::{UserSession, parse_cookie};
use crate::store::Store;

/// The session the session cookie's value proves, unless it was revoked.
/// (An expired one may still be ended: logout is idempotent.)
pub async fn browser_session(
    state: &AppState,
    session_cookie: Option<&str>,
) -> Result<Option<UserSession>, ServiceError> {
    let Some((sid, secret)) = session_cookie.and_then(parse_cookie) else {
        return Ok(None);
    };
    let session = state.store.session(sid).await.map_err(|e| ServiceError::internal("reading a user session", e))?;
    Ok(session.filter(|s| s.cookie_matches(secret) && s.revoked.is_none()))
}

/// End `session` and every family in it, queue the back-channel logouts
/// and audit it ([`crate::service::revocation::Revocation::session`]); `client_id`
/// is the application that asked, for the log.
pub async fn end_session(
    state: &AppState,
    session: &UserSession,
    client_id: Option<&str>,
    now: UnixTime,
) -> Result<(), ServiceError> {
    state
        .revocation(now)
        .session(&session.sid, &session.username, "logout")
        .await
        .map_err(|e| ServiceError::internal("ending a user session", e))?;
    tracing::info!(username = %session.username, sid = %session.sid, client_id = client_id.unwrap_or(""), "logout");
    Ok(())
}
