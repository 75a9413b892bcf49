//! `/console` and its sign-in and sign-out: the start page, the end of
//! the console's code + PKCE flow, signing out, and the console's 404.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::ConsoleState;
use super::extract::CsrfForm;
use super::page::{failed, plain, signed_out_of_console};
use super::session::{self, CallbackError, see_other};
use crate::http::pages::PageError;
use crate::oauth::client::Permission;
use crate::service::ServiceError;

/// `/console`: the first page the viewer may see.
pub async fn home(State(state): State<ConsoleState>, headers: HeaderMap) -> Result<Response, PageError> {
    let viewer = session::viewer(&state, &headers, "/console").await.map_err(PageError::shown)?;
    Ok(if viewer.has(Permission::SystemAdminister) {
        see_other("/console/settings")
    } else if viewer.has(Permission::UsersEdit) {
        see_other("/console/users")
    } else {
        see_other("/console/account")
    })
}

/// `/console/callback`: the end of the console's code + PKCE flow.
pub async fn callback(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match session::finish_sign_in(&state, &headers, &params).await {
        Ok(response) => response,
        Err(CallbackError::NoSignIn) => plain(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, was already used, or took too long. Sign in again.",
            true,
        ),
        Err(CallbackError::Refused(reason)) => {
            plain(StatusCode::BAD_REQUEST, "Sign-in failed", &format!("The sign-in did not complete: {reason}"), true)
        }
    }
}

/// `POST /console/sign-out`: revoke the console's family, forget the tokens,
/// clear the cookie.
pub async fn sign_out(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form: _, .. }: CsrfForm,
) -> Result<Response, PageError> {
    if let Some(fid) = session::family_of(&viewer) {
        let revocation = state.revocation(state.now());
        if let Err(e) = revocation.family(fid, viewer.username(), "console_signed_out").await {
            tracing::error!(error = %e, "revoking the console's family at sign-out");
            return Ok(failed(&viewer, ServiceError::Internal(Some("signing out".into())), "/console").await);
        }
    }
    Ok(signed_out_of_console(&state, &viewer).await)
}

/// `/console/signed-out`: the landing page of a sign-out clears the
/// browser's cache again (a browser may not act on `Clear-Site-Data` of the
/// redirect that led here).
pub async fn signed_out() -> Response {
    let mut response = plain(StatusCode::OK, "Signed out", "You have signed out of the tenure console.", false);
    response.headers_mut().insert("clear-site-data", HeaderValue::from_static(session::CLEAR_CACHE));
    response
}

pub async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Page not found", "There is no such page in the console.", true)
}
