//! Sessions through the account and admin API (SPEC 4, "Admin and account
//! API"): a user lists and revokes their own sessions under
//! `/account/sessions`; a holder of `users:edit` does the same for anyone
//! under `/admin/users/{username}/sessions` and `/admin/sessions/{sid}`,
//! except that ending a session of a user who holds permissions needs
//! `system:administer` (the helpdesk rule of `crate::service::users`).
//!
//! Handlers are thin: [`Caller`] authenticates (401) and checks the
//! permission (403); the use cases live in `crate::service::sessions`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::admin::actor;
use super::api::Caller;
use crate::oauth::client::Permission;
use crate::service::sessions::{self, SessionView};
use crate::service::{AppState, ServiceError};

#[derive(Serialize)]
struct AccountSessions {
    sessions: Vec<SessionView>,
}

#[derive(Serialize)]
struct UserSessions {
    username: String,
    sessions: Vec<SessionView>,
}

/// `GET /account/sessions`: the caller's live sessions, newest first, then
/// those that ended in the last 30 days (SPEC 14).
pub async fn list_own(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    let username = account_holder(&caller)?;
    let sessions = sessions::listed_sessions(&state, username, caller.claims.sid.as_deref(), state.now()).await?;
    Ok(no_store(Json(AccountSessions { sessions })))
}

/// `DELETE /account/sessions`: sign out everywhere, this session included.
pub async fn revoke_own_all(State(state): State<AppState>, caller: Caller) -> Result<Response, ServiceError> {
    let username = account_holder(&caller)?;
    sessions::revoke_own_all(&state, username, state.now()).await?;
    Ok(no_content())
}

/// `DELETE /account/sessions/{sid}`: revoke one of the caller's sessions
/// (idempotent); 404 for an unknown sid or someone else's.
pub async fn revoke_own(
    State(state): State<AppState>,
    caller: Caller,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    let username = account_holder(&caller)?;
    let Path(sid) = sid?;
    sessions::revoke_own(&state, username, &sid, state.now()).await?;
    Ok(no_content())
}

/// `GET /admin/users/{username}/sessions` (`users:edit`).
pub async fn list_user(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(username) = username?;
    let sessions = sessions::user_sessions(&state, &username, caller.claims.sid.as_deref(), state.now()).await?;
    Ok(no_store(Json(UserSessions { username, sessions })))
}

/// `DELETE /admin/users/{username}/sessions` (`users:edit`): every session
/// of the user, in one write whatever their number.
pub async fn revoke_user(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(username) = username?;
    sessions::revoke_user(&state, &actor(&caller), &username, state.now()).await?;
    Ok(no_content())
}

/// `DELETE /admin/sessions/{sid}` (`users:edit`): idempotent; 404 when unknown.
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    sid: Result<Path<String>, PathRejection>,
) -> Result<Response, ServiceError> {
    caller.require(Permission::UsersEdit)?;
    let Path(sid) = sid?;
    sessions::revoke_session(&state, &actor(&caller), &sid, state.now()).await?;
    Ok(no_content())
}

/// The user of a user token; client-credentials tokens have no account.
fn account_holder(caller: &Caller) -> Result<&str, ServiceError> {
    caller.user().ok_or_else(|| ServiceError::Forbidden("the account API needs a user's token".to_owned()))
}

fn no_store(body: impl IntoResponse) -> Response {
    ([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], body).into_response()
}

fn no_content() -> Response {
    no_store(StatusCode::NO_CONTENT)
}
