//! A signed-in user's own password (SPEC 14): `POST /account/password` and
//! the console's "Change password" (My sessions).
//!
//! The current password is checked under the sign-in throttle (SPEC 7), so
//! a stolen access token gives no more password guesses than the sign-in
//! page: a wrong one counts per (username, address) and per address, and is
//! audited as a failed sign-in. The new password follows the rule of user
//! creation. The new hash is written, and every other session of the user
//! ends (reason `credentials_changed`, with its back-channel logouts and
//! feed events), in one durable store step, while the session the request
//! came from lives on ([`Store::write_user_keeping`]).

use super::actor::hash_secret;
use super::error::{Result, ServiceError};
use super::signin::{Refusal, check_throttled};
use super::users::{REASON_CREDENTIALS_CHANGED, check_new_password};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::service::AppState;
use crate::session::Revoked;
use crate::store::Store;

/// A user's request to change their own password.
pub struct PasswordChange<'a> {
    pub current_password: &'a str,
    pub new_password: &'a str,
    /// The session the request came from (the access token's `sid`): it
    /// stays signed in.
    pub current_sid: &'a str,
    /// The caller's address, for the sign-in throttle and the audit log.
    pub remote: &'a str,
}

/// What a password change did.
#[derive(Debug, PartialEq, Eq)]
pub struct PasswordChanged {
    /// Whether the current session lives on (`false` only when it ended
    /// while the request ran: then every session of the user ended).
    pub current_kept: bool,
}

/// Change `username`'s password: check the current one (throttled and
/// counted as a sign-in), the new one's rule, then write the new hash and end
/// every other session in one step.
pub async fn change_password(
    state: &AppState,
    username: &str,
    change: PasswordChange<'_>,
    now: UnixTime,
) -> Result<PasswordChanged> {
    let PasswordChange { current_password, new_password, current_sid, remote } = change;
    if current_password.is_empty() {
        return Err(ServiceError::invalid("current_password: is required"));
    }
    if new_password.is_empty() {
        return Err(ServiceError::invalid("new_password: is required"));
    }
    check_new_password("new_password", new_password)?;
    if state.users.contains_key(username) {
        return Err(ServiceError::Conflict(format!(
            "user {username:?} is declared in the config file; their password is changed there"
        )));
    }
    match check_throttled(state, username, current_password, remote, now).await? {
        Ok(_) => {}
        Err(Refusal::WrongCredentials | Refusal::MissingCredentials) => {
            return Err(ServiceError::InvalidGrant(
                "current_password: is not this account's password (failed attempts count against the sign-in \
                 limit)"
                    .into(),
            ));
        }
        Err(Refusal::AccountThrottled { retry_after_secs } | Refusal::AddressThrottled { retry_after_secs }) => {
            return Err(ServiceError::TooManyRequests {
                message: format!(
                    "current_password: too many wrong passwords; try again in {retry_after_secs} s (the sign-in limit)"
                ),
                retry_after_secs,
            });
        }
        Err(Refusal::Busy) => return Err(ServiceError::busy_hashing()),
    }
    let store_err = |e: crate::store::StoreError| ServiceError::store("changing a password", e);
    let Some(mut user) = state.store.user(username).await.map_err(store_err)? else {
        return Err(ServiceError::NotFound(format!("no user named {username:?}")));
    };
    user.password_hash = hash_secret(state, new_password.to_owned()).await?;
    let event = AuditEvent::new(now, EventKind::UserUpdated, username, format!("user:{username}"))
        .ending(REASON_CREDENTIALS_CHANGED)
        .details(serde_json::json!({ "changed": ["password"], "kept_session": current_sid, "ip": remote }));
    let revoked = Revoked { at: now, reason: REASON_CREDENTIALS_CHANGED.into(), by: Some(username.to_owned()) };
    let fallout = state.revocation(now).fallout(username);
    let current_kept =
        state.store.write_user_keeping(&user, &revoked, current_sid, &fallout, &event).await.map_err(store_err)?;
    fallout.log_committed();
    event.log();
    tracing::info!(username, current_kept, "password changed by its user; their other sessions ended");
    Ok(PasswordChanged { current_kept })
}
